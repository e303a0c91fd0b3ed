# Reference emulation of T5's train splits for the files of this folder: TFDS's readers and
# T5's preprocessors as testdata/eval/emulate.py transliterates them (its functions are
# reused unchanged), plus what differs for training:
#   - glue/mrpc: TFDS glue.py _generate_example_mrpc_files(split="train"): the rows of
#     msr_paraphrase_train.txt (BOM skipped) whose [#1 ID, #2 ID] is not in dev_ids.tsv,
#     idx = the row's number in the MSR file;
#   - super_glue/wsc: T5's super_glue_wsc_v102_simple_train (wsc_simple with
#     correct_referent_only=True): only rows labelled True;
#   - super_glue/record: every per-answer example of preprocessors.record, not the first.
# Run from the repository root:
#   python3 evaluate/task/testdata/train/emulate_train.py evaluate/task/testdata/train evaluate/task/testdata/train/expected.json
import csv, json, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, '..', '..', '..', '..', 'testdata', 'eval', 'emulate.py'), encoding='utf-8').read()
exec(src.split('data=sys.argv[1]')[0])

def mrpc_train(msr, dev_ids_path):
    with open(dev_ids_path, encoding='utf-8') as f:
        dev_ids = [[r[0], r[1]] for r in csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)]
    out = []
    with open(msr, encoding='utf-8') as f:
        f.seek(3)
        for n, row in enumerate(csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE)):
            if [row['#1 ID'], row['#2 ID']] in dev_ids:
                continue
            inp = glue_join('mrpc', {'sentence1': row['#1 String'], 'sentence2': row['#2 String']})
            out.append(dict(id=str(n), input=inp, target=['not_equivalent', 'equivalent'][int(row['Quality'])]))
    return out

def record_all(path):
    out = []
    for line in open(path, encoding='utf-8'):
        row = json.loads(line); p = row['passage']; text = p['text']
        ents = sorted({text[e['start']:e['end'] + 1] for e in p['entities']})
        passage = re.sub(r'(\.|\?|\!|\"|\')\n@highlight\n', r'\1 ', text)
        passage = re.sub(r'\n@highlight\n', '. ', passage)
        for qa in row['qas']:
            ans = sorted({a['text'] for a in qa.get('answers', [])})
            inp = ' '.join(['record query:', qa['query'], 'entities:', ', '.join(ents), 'passage:', passage])
            for tg in ans or ['<unk>']:
                out.append(dict(id='p%d/q%d' % (row['idx'], qa['idx']), input=inp, target=tg, answers=ans, choices=ents))
    return out

data = sys.argv[1]
res = {
    'glue/sst2': glue('sst2', os.path.join(data, 'glue', 'SST-2', 'train.tsv')),
    'glue/cola': glue('cola', os.path.join(data, 'glue', 'CoLA', 'in_domain_train.tsv')),
    'glue/mrpc': mrpc_train(os.path.join(data, 'glue', 'MRPC', 'msr_paraphrase_train.txt'), os.path.join(data, 'glue', 'MRPC', 'dev_ids.tsv')),
    'super_glue/boolq': superglue('boolq', os.path.join(data, 'superglue', 'BoolQ', 'train.jsonl')),
    'super_glue/cb': superglue('cb', os.path.join(data, 'superglue', 'CB', 'train.jsonl')),
    'super_glue/wsc': [e for e in superglue('wsc', os.path.join(data, 'superglue', 'WSC', 'train.jsonl')) if e['gold'] == 1],
    'super_glue/record': record_all(os.path.join(data, 'superglue', 'ReCoRD', 'train.jsonl')),
    'squad': squad(os.path.join(data, 'squad', 'train-v1.1.json')),
}
with open(sys.argv[2], 'w') as f:
    f.write('{\n')
    for i, k in enumerate(sorted(res)):
        f.write(' %s: [\n' % json.dumps(k))
        f.write(',\n'.join('  ' + json.dumps(e, ensure_ascii=False, sort_keys=True) for e in res[k]))
        f.write('\n ]%s\n' % (',' if i < len(res) - 1 else ''))
    f.write('}\n')
print({k: len(v) for k, v in res.items()})
