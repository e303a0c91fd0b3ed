# Reference emulation of how TFDS reads the GLUE / SuperGLUE / SQuAD dev files and how T5
# turns them into text-to-text examples, transliterated line by line from the Python
# sources (tensorflow_datasets/text/glue.py and super_glue.py @ 0560e686ded1ed7876137f062fa09467717a8e42,
# question_answering/qa_utils.py generate_squadlike_examples (squad/v1.1:3.0.0),
# t5/data/preprocessors.py @ e081111ccd51df425aa7124e8e311ed6d403d767) with TensorFlow's ops
# replaced by their Python equivalents (RE2 ASCII classes spelled out; float32 via struct).
# It writes the expected examples the Go tests compare with:
#   python3 emulate.py testdata/eval testdata/eval/expected.json
import csv, json, sys, struct, re, os

def f32(x): return struct.unpack('f', struct.pack('f', x))[0]

def glue_join(bench, feats, names=None):
    keys = names or sorted(feats.keys())
    parts=[bench]
    for k in keys:
        parts += [k+':', feats[k]]
    j=' '.join(parts)
    if bench=='multirc':
        j=re.sub('<br>',' ',j); j=re.sub('<(/)?b>','',j)
    return j

GLUE = {
 'cola': dict(dir='CoLA', feats={'sentence':'sentence'}, label='is_acceptable', classes=['unacceptable','acceptable'], bench='cola'),
 'sst2': dict(dir='SST-2', feats={'sentence':'sentence'}, label='label', classes=['negative','positive'], bench='sst2'),
 'mrpc': dict(dir='MRPC', feats={'sentence1':'#1 String','sentence2':'#2 String'}, label='Quality', classes=['not_equivalent','equivalent'], bench='mrpc'),
 'stsb': dict(dir='STS-B', feats={'sentence1':'sentence1','sentence2':'sentence2'}, label='score', classes=None, bench='stsb'),
 'qqp': dict(dir='QQP', feats={'question1':'question1','question2':'question2'}, label='is_duplicate', classes=['not_duplicate','duplicate'], bench='qqp'),
 'mnli_matched': dict(dir='MNLI', file='dev_matched.tsv', feats={'premise':'sentence1','hypothesis':'sentence2'}, label='gold_label', classes=['entailment','neutral','contradiction'], bench='mnli'),
 'mnli_mismatched': dict(dir='MNLI', file='dev_mismatched.tsv', feats={'premise':'sentence1','hypothesis':'sentence2'}, label='gold_label', classes=['entailment','neutral','contradiction'], bench='mnli'),
 'qnli': dict(dir='QNLI', feats={'question':'question','sentence':'sentence'}, label='label', classes=['entailment','not_entailment'], bench='qnli'),
 'rte': dict(dir='RTE', feats={'sentence1':'sentence1','sentence2':'sentence2'}, label='label', classes=['entailment','not_entailment'], bench='rte'),
 'wnli': dict(dir='WNLI', feats={'sentence1':'sentence1','sentence2':'sentence2'}, label='label', classes=['not_entailment','entailment'], bench='wnli'),
}

def glue(name, path):
    c=GLUE[name]
    out=[]
    with open(path, encoding='utf-8') as f:
        if name=='mrpc' and f.read(1)!='\ufeff': f.seek(0)
        reader = csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
        if name=='cola': reader = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
        for n,row in enumerate(reader):
            if name=='cola': row={'sentence':row[3],'is_acceptable':row[1]}
            ex={feat:row[col] for feat,col in c['feats'].items()}
            label=row[c['label']]
            if c['classes'] and label not in c['classes']:
                label=int(label) if label else None
            elif c['classes']:
                label=c['classes'].index(label)
            if any(v is None for v in ex.values()) or label is None: continue
            if name=='stsb':
                l=f32(float(label))
                v=f32(round(f32(l*5))/5)  # python round is half-even
                tgt='%.1f'%v
                inp=' '.join(['stsb sentence1:',ex['sentence1'],'sentence2:',ex['sentence2']])
            else:
                tgt=c['classes'][label]
                inp=glue_join(c['bench'], ex)
            out.append(dict(id=str(n), input=inp, target=tgt))
    return out

def pad(t):
    t=re.sub(r'([!-/:-@\[-`{-~])', r' \1 ', t)
    return re.sub(r'[\t\n\f\r ]+', ' ', t)
def sjoin(l): return re.sub(r'[\t\n\f\r ]+', ' ', ' '.join(l))
def squad(path):
    qas={}
    sq=json.load(open(path, encoding='utf-8'))
    for art in sq['data']:
        for p in art['paragraphs']:
            for qa in p['qas']:
                qa['context']=p['context']
                if qa['id'] in qas: qas[qa['id']]['answers'].extend(qa['answers'])
                else: qas[qa['id']]=qa
    out=[]
    for id_,qa in qas.items():
        a=[pad(x['text']) for x in qa['answers']]
        out.append(dict(id=id_, input=sjoin(['question:',pad(qa['question']),'context:',pad(qa['context'])]), target=a[0], answers=a))
    return out
def record(path):
    out=[]
    for line in open(path, encoding='utf-8'):
        row=json.loads(line); p=row['passage']; text=p['text']
        ents=sorted({text[e['start']:e['end']+1] for e in p['entities']})
        passage=re.sub(r'(\.|\?|\!|\"|\')\n@highlight\n', r'\1 ', text)
        passage=re.sub(r'\n@highlight\n', '. ', passage)
        for qa in row['qas']:
            ans=sorted({a['text'] for a in qa.get('answers',[])})
            inp=' '.join(['record query:', qa['query'], 'entities:', ', '.join(ents), 'passage:', passage])
            tg=ans or ['<unk>']
            # T5: one example per answer; Load keeps the first of each query.
            out.append(dict(id='p%d/q%d'%(row['idx'],qa['idx']), input=inp, target=tg[0], answers=ans, choices=ents))
    return out

def cast(label):
    if isinstance(label,str): return label
    if isinstance(label,bool): return 'True' if label else 'False'
    if isinstance(label,int): assert label in (0,1); return str(label)
    raise ValueError

def fix_wst(ex):
    def fix(k):
        text=ex[k+'_text']; index=ex[k+'_index']
        if text in ex['text']: return
        if text in ('Kamenev and Zinoviev','Kamenev, Zinoviev, and Stalin'): return
        if 'theyscold' in text:
            ex['span2_index']=10
        first=ex['text'].split()[index]
        if first[0].islower(): text=text[0].lower()+text[1:]
        else: text=text[0].upper()+text[1:]
        text=text.rstrip('.').replace('\n',' ')
        ex[k+'_text']=text
        assert ex[k+'_text'] in ex['text'], ex
    fix('span1'); fix('span2'); return ex

SPECIAL = {
 'The boy continued to whip the pony , and eventually the pony threw him over. John laughed out quite loud. "Good for him," he said. ':
 'The boy continued to whip the pony , and eventually the pony threw him over. John laughed out quite loud. "Good for X ," he said.',
 'When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use it , but really for now, what more could they wish for?':
 'When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use X , but really for now, what more could they wish for?',
}
def wsc_inputs(x):
    if x['text'] in SPECIAL: return SPECIAL[x['text']]
    words=x['text'].split(' ')
    i=x['span2_index']; assert 0<i<len(words); assert words[i]==x['span2_text'], (words[i], x)
    return ' '.join([' '.join(words[:i]),'X',' '.join(words[i+1:])])

SG = {
 'boolq': (['question','passage'], ('False','True')),
 'cb': (['premise','hypothesis'], ['entailment','contradiction','neutral']),
 'copa': (['premise','choice1','choice2','question'], ['choice1','choice2']),
 'rte': (['premise','hypothesis'], ['entailment','not_entailment']),
 'wic': (['word','sentence1','sentence2','start1','start2','end1','end2'], ('False','True')),
}
def superglue(name, path):
    out=[]
    for line in open(path, encoding='utf-8'):
        row=json.loads(line)
        if name=='multirc':
            p=row['passage']
            for q in p['questions']:
                for a in q['answers']:
                    label=a.get('label')
                    lab = '<unk>' if label is None else cast(bool(label))
                    inp=glue_join('multirc', {'paragraph':p['text'],'question':q['question'],'answer':a['text']}, ['question','answer','paragraph'])
                    out.append(dict(id='p%d/q%d/a%d'%(row['idx'],q['idx'],a['idx']), input=inp, target=lab, group='q%d'%q['idx']))
            continue
        if name=='wsc':
            row.update(row['target'])
            ex={k:row[k] for k in ['text','span1_index','span2_index','span1_text','span2_text']}
            ex=fix_wst(ex)
            inp='wsc: '+re.sub(r' X ', ' *'+ex['span2_text']+'* ', wsc_inputs(ex))
            out.append(dict(id=str(row['idx']), input=inp, target=ex['span1_text'], gold=('False','True').index(cast(row['label']))))
            continue
        feats, classes = SG[name]
        ex={k:row[k] for k in feats}
        if name=='copa': lab='choice2' if row['label'] else 'choice1'
        else: lab=cast(row['label'])
        assert lab in classes
        if name=='wic':
            inp=glue_join('wic', ex, ['sentence1','sentence2','word'])
        else:
            inp=glue_join(name, ex)
        out.append(dict(id=str(row['idx']), input=inp, target=lab))
    return out

data=sys.argv[1]
res={}
for n in GLUE: res['glue/'+n]=glue(n, os.path.join(data,'glue',GLUE[n]['dir'],GLUE[n].get('file','dev.tsv')))
for n,d in [('boolq','BoolQ'),('cb','CB'),('copa','COPA'),('multirc','MultiRC'),('rte','RTE'),('wic','WiC'),('wsc','WSC')]:
    res['super_glue/'+n]=superglue(n, os.path.join(data,'superglue',d,'val.jsonl'))
res['super_glue/record']=record(os.path.join(data,'superglue','ReCoRD','val.jsonl'))
res['squad']=squad(os.path.join(data,'squad','dev-v1.1.json'))
with open(sys.argv[2],'w') as f:
    f.write('{\n')
    for i,k in enumerate(sorted(res)):
        f.write(' %s: [\n' % json.dumps(k))
        f.write(',\n'.join('  '+json.dumps(e, ensure_ascii=False, sort_keys=True) for e in res[k]))
        f.write('\n ]%s\n' % (',' if i < len(res)-1 else ''))
    f.write('}\n')
print({k:len(v) for k,v in res.items()})
