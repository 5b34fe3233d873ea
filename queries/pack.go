package queries

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	yaml "go.yaml.in/yaml/v3"
)

// Pack is a named set of rules, read from one YAML file.
type Pack struct {
	Name        string  `yaml:"pack" json:"name"`
	Title       string  `yaml:"title" json:"title"`
	Description string  `yaml:"description" json:"description"`
	Rules       []*Rule `yaml:"rules" json:"rules"`
	// Source is the file the pack was read from ("embedded:packs/cis-5.1.yaml" for kiem's own).
	Source string `yaml:"-" json:"source"`
}

// References ties a rule to the benchmarks and techniques it covers.
type References struct {
	CIS   []string `yaml:"cis" json:"cis,omitempty"`
	MITRE []string `yaml:"mitre" json:"mitre,omitempty"`
	URLs  []string `yaml:"urls" json:"urls,omitempty"`
}

// GradedSeverity raises or lowers a rule's severity when its condition holds.
type GradedSeverity struct {
	When     string   `yaml:"when" json:"when"`
	Severity Severity `yaml:"severity" json:"severity"`
}

// Rule is one risk check. Exactly one of Match (a CEL expression over the target's model) and Check (the name of
// a Go check) is set.
type Rule struct {
	ID          string     `yaml:"id" json:"id"`
	Title       string     `yaml:"title" json:"title"`
	Severity    Severity   `yaml:"severity" json:"severity"`
	Description string     `yaml:"description" json:"description"`
	Remediation string     `yaml:"remediation" json:"remediation"`
	References  References `yaml:"references" json:"references"`
	Target      Target     `yaml:"target" json:"target"`
	Match       string     `yaml:"match" json:"match,omitempty"`
	Check       string     `yaml:"check" json:"check,omitempty"`
	// Severities are tried in order; the first whose condition holds sets the finding's severity.
	Severities []GradedSeverity `yaml:"severities" json:"severities,omitempty"`
	// Message is an optional CEL string expression for the finding's message; by default kiem writes one.
	Message string `yaml:"message" json:"message,omitempty"`
	// Requires names optional data the rule needs ("secrets": Secret metadata; "pods"; "nodes"); without it the
	// rule does not run, and says so.
	Requires []string `yaml:"requires" json:"requires,omitempty"`

	Pack   string `yaml:"-" json:"pack"`
	Source string `yaml:"-" json:"source"` // file:line of the rule

	match cel.Program
	// probes are the permission questions the rule's expressions ask; when probesComplete, a subject whose own
	// grants in a scope answer none of them cannot have a finding there (one needs such a grant as evidence),
	// so the expressions are not run.
	probes         []probe
	probesComplete bool
	severities     []cel.Program
	message        cel.Program
	check          *check
	// The checked expressions and their environment, from which an engine compiles its native form
	// (nativeRule).
	env          *cel.Env
	matchAST     *cel.Ast
	severityASTs []*cel.Ast
	messageAST   *cel.Ast
	// grantLocal is set for a grant rule whose match reads only the rule, its role and where it was aggregated
	// from: its answer is the same for every binding of the role.
	grantLocal bool
	// guards are conjuncts of the match tested in Go first (see guard).
	guards []guard
}

// Data that rules may require.
const (
	DataSecrets = "secrets"
	DataPods    = "pods"
	DataNodes   = "nodes"
	// DataServiceAccounts: ServiceAccount objects (an RBAC-only export has none, and every ServiceAccount
	// subject would look missing).
	DataServiceAccounts = "serviceAccounts"
)

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	packPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

//go:embed packs/*.yaml
var embedded embed.FS

// Embedded returns the packs that ship with kiem.
func Embedded() ([]*Pack, error) {
	return LoadFS(embedded, "packs", "embedded:")
}

// LoadDir reads every *.yaml and *.yml file of dir as a pack.
func LoadDir(fsys fs.FS, dir string) ([]*Pack, error) { return LoadFS(fsys, dir, "") }

// LoadFS reads the packs of dir in fsys; sourcePrefix is prepended to file names in Source and in errors.
func LoadFS(fsys fs.FS, dir, sourcePrefix string) ([]*Pack, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading packs: %w", err)
	}
	var packs []*Pack
	var errs []error
	for _, e := range entries {
		if e.IsDir() || (path.Ext(e.Name()) != ".yaml" && path.Ext(e.Name()) != ".yml") {
			continue
		}
		name := path.Join(dir, e.Name())
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading pack: %w", err))
			continue
		}
		p, err := ParsePack(sourcePrefix+name, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		packs = append(packs, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return packs, nil
}

// ParsePack reads and validates one pack: unknown fields, missing fields, CEL syntax and type errors, unknown
// checks and targets are errors that name the file and line.
func ParsePack(file string, data []byte) (*Pack, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Pack
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, relineYAML(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	lines := ruleLines(&doc)
	p.Source = file
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	if !packPattern.MatchString(p.Name) {
		fail(1, "pack: want a lower-case name of letters, digits, '.', '_' or '-', got %q", p.Name)
	}
	if p.Title == "" {
		fail(1, "title: missing")
	}
	if len(p.Rules) == 0 {
		fail(1, "rules: a pack needs at least one rule")
	}
	seen := map[string]int{}
	for i, r := range p.Rules {
		line := 1
		if i < len(lines) {
			line = lines[i].rule
		}
		r.Pack = p.Name
		r.Source = fmt.Sprintf("%s:%d", file, line)
		if prev, dup := seen[r.ID]; dup {
			fail(line, "rule %s: id already used at line %d", r.ID, prev)
		}
		seen[r.ID] = line
		for _, err := range r.compile() {
			at := line
			if i < len(lines) {
				if l, ok := lines[i].fields[err.field]; ok {
					at = l
				}
			}
			fail(at, "rule %s: %s", r.ID, err.msg)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &p, nil
}

type ruleLine struct {
	rule   int
	fields map[string]int
}

// ruleLines finds the line of every rule and of its fields, for errors found after decoding.
func ruleLines(doc *yaml.Node) []ruleLine {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rules" || root.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		var out []ruleLine
		for _, item := range root.Content[i+1].Content {
			rl := ruleLine{rule: item.Line, fields: map[string]int{}}
			for j := 0; j+1 < len(item.Content); j += 2 {
				rl.fields[item.Content[j].Value] = item.Content[j+1].Line
			}
			out = append(out, rl)
		}
		return out
	}
	return nil
}

// relineYAML keeps yaml's "line N: ..." messages but drops its "yaml: unmarshal errors:" wrapping.
func relineYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

type fieldError struct{ field, msg string }

// compile checks the rule and prepares its programs.
func (r *Rule) compile() []fieldError {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if !idPattern.MatchString(r.ID) {
		bad("id", "id: want letters, digits, '.', '_' or '-', got %q", r.ID)
	}
	if r.Title == "" {
		bad("title", "title: missing")
	}
	if r.Description == "" {
		bad("description", "description: missing")
	}
	if r.Remediation == "" {
		bad("remediation", "remediation: missing")
	}
	for _, d := range r.Requires {
		if !slices.Contains([]string{DataSecrets, DataPods, DataNodes, DataServiceAccounts}, d) {
			bad("requires", "requires: unknown data %q (want secrets, pods, nodes or serviceAccounts)", d)
		}
	}
	switch {
	case r.Match != "" && r.Check != "":
		bad("check", "set either match or check, not both")
		return errs
	case r.Match == "" && r.Check == "":
		bad("match", "match (a CEL expression) or check (a Go check) is required")
		return errs
	case r.Target == TargetPath && r.Check == "":
		bad("check", "target path takes a Go check, not match")
		return errs
	case r.Check != "":
		c, ok := checks[r.Check]
		if !ok {
			bad("check", "unknown check %q (known: %s)", r.Check, strings.Join(checkNames(), ", "))
			return errs
		}
		if r.Target != "" && r.Target != c.target {
			bad("target", "check %s runs on target %s, not %s", r.Check, c.target, r.Target)
		}
		r.Target = c.target
		r.check = c
	}
	if r.Target == "" {
		bad("target", "target: missing (one of %s)", targetNames())
		return errs
	}
	env, err := envFor(r.Target)
	if err != nil {
		bad("target", "target: unknown target %q (one of %s)", r.Target, targetNames())
		return errs
	}
	if r.Match != "" {
		prg, ast, err := compileExpr(env, r.Match, cel.BoolType)
		if err != nil {
			bad("match", "match: %v", err)
		} else {
			r.probes, r.probesComplete = probesOf(ast)
		}
		r.match, r.matchAST, r.env = prg, ast, env
		if ast != nil {
			r.guards = guardsOf(ast)
		}
		if ast != nil && r.Target == TargetGrant {
			r.grantLocal = readsOnly(ast, "rule", "role", "aggregatedFrom")
		}
	}
	addProbes := func(ast *cel.Ast) {
		ps, complete := probesOf(ast)
		r.probes = append(r.probes, ps...)
		r.probesComplete = r.probesComplete && complete
	}
	for i, g := range r.Severities {
		prg, ast, err := compileExpr(env, g.When, cel.BoolType)
		if err != nil {
			bad("severities", "severities[%d].when: %v", i, err)
		} else {
			addProbes(ast)
		}
		r.severities = append(r.severities, prg)
		r.severityASTs = append(r.severityASTs, ast)
	}
	if r.Message != "" {
		prg, ast, err := compileExpr(env, r.Message, cel.StringType)
		if err != nil {
			bad("message", "message: %v", err)
		} else {
			addProbes(ast)
		}
		r.message, r.messageAST = prg, ast
	}
	return errs
}

// costLimit bounds one evaluation of one expression, as Kubernetes bounds admission expressions.
const costLimit = 1_000_000

func compileExpr(env *cel.Env, src string, want *cel.Type) (cel.Program, *cel.Ast, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(want) {
		return nil, nil, fmt.Errorf("expression gives %s, want %s", ast.OutputType(), want)
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit))
	return prg, ast, err
}

func targetNames() string {
	var out []string
	for _, t := range Targets() {
		out = append(out, string(t))
	}
	return strings.Join(out, ", ")
}

// LoadPacks returns kiem's embedded packs followed by the packs of every directory in dirs (--packs).
func LoadPacks(dirs ...string) ([]*Pack, error) {
	packs, err := Embedded()
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		more, err := LoadFS(os.DirFS(d), ".", strings.TrimSuffix(d, "/")+"/")
		if err != nil {
			return nil, err
		}
		packs = append(packs, more...)
	}
	return packs, nil
}
