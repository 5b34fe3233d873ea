package queries

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kiem-io/kiem/graph"
	yaml "go.yaml.in/yaml/v3"
)

// Suppression accepts the findings of one rule that match every field it sets, until it expires.
type Suppression struct {
	// ID is a stable identifier (given, or derived from the match fields), used to remove it.
	ID        string           `yaml:"id,omitempty" json:"id"`
	Rule      string           `yaml:"rule" json:"rule"`
	Subject   *graph.ObjectRef `yaml:"subject,omitempty" json:"subject,omitempty"`
	Namespace string           `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Object    *graph.ObjectRef `yaml:"object,omitempty" json:"object,omitempty"`
	Owner     string           `yaml:"owner" json:"owner"`
	Reason    string           `yaml:"reason" json:"reason"`
	// Expires is the first day the suppression no longer applies (YYYY-MM-DD, UTC).
	Expires string `yaml:"expires" json:"expires"`
	Source  string `yaml:"-" json:"source,omitempty"`

	expires time.Time
}

func (s *Suppression) expiresText() string { return s.Expires }

// Expired reports whether the suppression no longer applies at now.
func (s *Suppression) Expired(now time.Time) bool { return !now.Before(s.expires) }

// Suppressions is an immutable list of suppressions.
type Suppressions struct {
	items []Suppression
}

type suppressionsFile struct {
	Suppressions []Suppression `yaml:"suppressions"`
}

// LoadSuppressions reads a suppressions file.
func LoadSuppressions(path string) (*Suppressions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading suppressions: %w", err)
	}
	return ParseSuppressions(path, data)
}

// ParseSuppressions reads suppressions; errors name the file and line.
func ParseSuppressions(file string, data []byte) (*Suppressions, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sf suppressionsFile
	if err := dec.Decode(&sf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, relineYAML(err))
	}
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc)
	lines := itemLines(&doc, "suppressions")
	var errs []error
	for i := range sf.Suppressions {
		line := 1
		if i < len(lines) {
			line = lines[i]
		}
		s := &sf.Suppressions[i]
		s.Source = fmt.Sprintf("%s:%d", file, line)
		if err := s.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: suppression %d: %w", file, line, i+1, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewSuppressions(sf.Suppressions...)
}

// NewSuppressions validates suppressions and gives each an ID.
func NewSuppressions(items ...Suppression) (*Suppressions, error) {
	out := &Suppressions{items: make([]Suppression, 0, len(items))}
	seen := map[string]string{}
	for _, s := range items {
		if err := s.validate(); err != nil {
			return nil, err
		}
		if s.ID == "" {
			s.ID = fingerprint("suppression:"+s.Rule, s.Subject, s.Object, s.Namespace)
		}
		if prev, dup := seen[s.ID]; dup {
			return nil, fmt.Errorf("suppression %s (%s) repeats %s", s.ID, s.Source, prev)
		}
		seen[s.ID] = s.Source
		out.items = append(out.items, s)
	}
	return out, nil
}

func (s *Suppression) validate() error {
	var missing []string
	if s.Rule == "" {
		missing = append(missing, "rule")
	}
	if s.Owner == "" {
		missing = append(missing, "owner")
	}
	if s.Reason == "" {
		missing = append(missing, "reason")
	}
	if s.Expires == "" {
		missing = append(missing, "expires")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (a suppression says who accepted what, why, and until when)", strings.Join(missing, ", "))
	}
	t, err := time.Parse(time.DateOnly, s.Expires)
	if err != nil {
		return fmt.Errorf("expires: want a date YYYY-MM-DD, got %q", s.Expires)
	}
	s.expires = t
	for _, r := range []*graph.ObjectRef{s.Subject, s.Object} {
		if r != nil && (r.Kind == "" || r.Name == "") {
			return errors.New("subject and object need kind and name")
		}
	}
	return nil
}

// Items returns the suppressions.
func (s *Suppressions) Items() []Suppression {
	if s == nil {
		return nil
	}
	return slices.Clone(s.items)
}

// With returns the suppressions plus add.
func (s *Suppressions) With(add Suppression) (*Suppressions, error) {
	return NewSuppressions(append(s.Items(), add)...)
}

// Without returns the suppressions minus the one with the given ID; ok is false when there is none.
func (s *Suppressions) Without(id string) (out *Suppressions, ok bool) {
	items := s.Items()
	n := len(items)
	items = slices.DeleteFunc(items, func(x Suppression) bool { return x.ID == id })
	out, _ = NewSuppressions(items...)
	return out, len(items) < n
}

// match returns the first unexpired suppression that matches f.
func (s *Suppressions) match(f *Finding, now time.Time) *Suppression {
	if s == nil {
		return nil
	}
	for i := range s.items {
		x := &s.items[i]
		if x.Rule != f.Rule || x.Expired(now) {
			continue
		}
		if x.Subject != nil && (f.Subject == nil || *x.Subject != *f.Subject) {
			continue
		}
		if x.Object != nil && (f.Object == nil || *x.Object != *f.Object) {
			continue
		}
		if x.Namespace != "" && x.Namespace != f.Namespace {
			continue
		}
		c := *x
		return &c
	}
	return nil
}

// expired returns the suppressions past their date.
func (s *Suppressions) expired(now time.Time) []Suppression {
	if s == nil {
		return nil
	}
	var out []Suppression
	for _, x := range s.items {
		if x.Expired(now) {
			out = append(out, x)
		}
	}
	return out
}

// Marshal writes the suppressions in the file format ParseSuppressions reads.
func (s *Suppressions) Marshal() ([]byte, error) {
	return yaml.Marshal(suppressionsFile{Suppressions: s.Items()})
}

// itemLines returns the line of every item of the top-level sequence key.
func itemLines(doc *yaml.Node, key string) []int {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key && root.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, item := range root.Content[i+1].Content {
				out = append(out, item.Line)
			}
			return out
		}
	}
	return nil
}
