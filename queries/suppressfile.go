package queries

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// SuppressionFile keeps suppressions in a YAML file, the one `kiem scan --suppressions` reads, so that what is
// accepted in the console and in CI is one list an operator can review and version. Changes are written
// atomically (a temporary file renamed over the old one). With an empty path the suppressions live in memory
// only (the demo). It is safe for concurrent use.
type SuppressionFile struct {
	path string

	mu       sync.Mutex
	cur      *Suppressions
	onChange []func(*Suppressions)
}

// OpenSuppressionFile reads path; a missing file is an empty list, created on the first change.
func OpenSuppressionFile(path string) (*SuppressionFile, error) {
	f := &SuppressionFile{path: path, cur: &Suppressions{}}
	if path == "" {
		return f, nil
	}
	s, err := LoadSuppressions(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		f.cur = s
	}
	return f, nil
}

// Path returns the file's path; empty when the suppressions are kept in memory.
func (f *SuppressionFile) Path() string { return f.path }

// Current returns the suppressions.
func (f *SuppressionFile) Current() *Suppressions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// OnChange registers fn to be called with the new suppressions after every change, in the changing goroutine.
func (f *SuppressionFile) OnChange(fn func(*Suppressions)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onChange = append(f.onChange, fn)
}

// Add validates s, gives it an ID when it has none, and saves it.
func (f *SuppressionFile) Add(s Suppression) (Suppression, error) {
	f.mu.Lock()
	next, err := f.cur.With(s)
	if err != nil {
		f.mu.Unlock()
		return Suppression{}, err
	}
	if err := f.saveLocked(next); err != nil {
		f.mu.Unlock()
		return Suppression{}, err
	}
	added := next.items[len(next.items)-1]
	fns := f.onChange
	f.mu.Unlock()
	for _, fn := range fns {
		fn(next)
	}
	return added, nil
}

// Remove deletes the suppression with the given ID; false when there is none.
func (f *SuppressionFile) Remove(id string) (bool, error) {
	f.mu.Lock()
	next, ok := f.cur.Without(id)
	if !ok {
		f.mu.Unlock()
		return false, nil
	}
	if err := f.saveLocked(next); err != nil {
		f.mu.Unlock()
		return false, err
	}
	fns := f.onChange
	f.mu.Unlock()
	for _, fn := range fns {
		fn(next)
	}
	return true, nil
}

func (f *SuppressionFile) saveLocked(next *Suppressions) error {
	if f.path != "" {
		data, err := next.Marshal()
		if err != nil {
			return fmt.Errorf("saving suppressions: %w", err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(f.path), ".suppressions-*")
		if err != nil {
			return fmt.Errorf("saving suppressions: %w", err)
		}
		_, werr := tmp.Write(data)
		serr := tmp.Sync()
		cerr := tmp.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("saving suppressions to %s: %w", f.path, err)
		}
		if err := os.Rename(tmp.Name(), f.path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("saving suppressions to %s: %w", f.path, err)
		}
	}
	f.cur = next
	return nil
}
