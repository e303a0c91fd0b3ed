package zoo

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// journalEntry says that a chunk was written: its file, offset and digest.
type journalEntry struct {
	path   string
	offset int64
	digest Digest
}

// journal is the append-only record of a partial pull's finished chunks, one line
// "<path> <offset> <digest>\n" per chunk. Lines are appended after the chunk's bytes are
// written and verified, without syncing: a resumed pull re-hashes each recorded chunk on
// disk before trusting it, so the journal is a list of candidates, never the proof.
type journal struct {
	mu sync.Mutex
	f  *os.File
}

func openJournal(p string) (*journal, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journal{f: f}, nil
}

func (j *journal) add(e journalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal closed")
	}
	// One write(2) per line: with O_APPEND, a crash leaves at worst a torn last line.
	if _, err := j.f.WriteString(fmt.Sprintf("%s %d %s\n", e.path, e.offset, e.digest)); err != nil {
		return permanent(fmt.Errorf("journal: %w", err))
	}
	return nil
}

// Close closes the journal; later adds fail. It is safe to call twice.
func (j *journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// readJournal returns the entries of the journal at p (none if it does not exist). Lines
// that do not parse — a torn last line — are ignored.
func readJournal(p string) (map[journalEntry]bool, error) {
	entries := map[journalEntry]bool{}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return entries, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		off, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		d, err := ParseDigest(fields[2])
		if err != nil {
			continue
		}
		entries[journalEntry{fields[0], off, d}] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return entries, nil
}
