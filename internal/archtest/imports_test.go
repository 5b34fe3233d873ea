package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kiem-io/kiem"

// rule forbids packages under from (a kiem package path relative to the module) to import any path with one of
// the prefixes in deny, directly. Test files count too: a test reaching across the layout is a layout leak,
// except for the imports listed in tests (queries' tests read their manifest fixtures with the indexer, the
// loader users have; production code never does).
type rule struct {
	from  string
	deny  []string
	why   string
	tests []string
}

func rules() []rule {
	kiem := func(pkgs ...string) []string {
		var out []string
		for _, p := range pkgs {
			out = append(out, module+"/"+p)
		}
		return out
	}
	return []rule{
		{"graph", kiem("indexer", "gql", "queries", "ui", "cmd"), "graph is the core and imports no other kiem package", nil},
		{"graph", []string{"k8s.io/client-go", "github.com/99designs/gqlgen", "net/http"}, "graph holds no client or HTTP code", nil},
		{"indexer", kiem("gql", "queries", "ui", "cmd"), "indexer feeds graph only", nil},
		{"queries", kiem("gql", "indexer", "ui", "cmd"), "queries reads graph only", nil},
		{"gql", kiem("indexer", "ui", "cmd"), "gql serves graph and queries only", nil},
		{"ui", kiem("graph", "indexer", "gql", "queries", "cmd"), "ui talks to /graphql only", nil},
		{"", []string{"k8s.io/kubernetes"}, "k8s.io/kubernetes stays out of the main module (the oracle has its own)", nil},
	}
}

// owners says which kiem packages may import a library whose types must not leak out of them.
func owners() map[string][]string {
	return map[string][]string{
		"github.com/dgraph-io/badger": {"graph"},
		"gonum.org/v1/gonum":          {"graph"},
		"k8s.io/client-go":            {"indexer", "cmd", "internal/kubetest", "internal/synthkube", "e2e/load"},
	}
}

func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-test", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		name, imports, _ := strings.Cut(sc.Text(), "|")
		isTest := strings.Contains(name, ".test")
		// Test variants read "pkg [pkg.test]"; the test main reads "pkg.test".
		pkg, _, _ := strings.Cut(name, " ")
		pkg = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"), ".test")
		pkg = strings.TrimSuffix(pkg, "_test") // an external test package is its package's
		seen++
		for _, imp := range strings.Fields(imports) {
			for _, r := range rules() {
				if !under(pkg, r.from) {
					continue
				}
				for _, d := range r.deny {
					if (imp == d || strings.HasPrefix(imp, d+"/")) && !(isTest && slices.Contains(r.tests, imp)) {
						t.Errorf("%s imports %s: %s", name, imp, r.why)
					}
				}
			}
			for lib, allowed := range owners() {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || under(pkg, a)
				}
				if !ok {
					t.Errorf("%s imports %s: only %v may", name, imp, allowed)
				}
			}
		}
	}
	if seen < 3 {
		t.Fatalf("go list reported %d packages; the check saw nothing", seen)
	}
}

// under reports whether kiem package pkg (relative path) is dir or below it; "" is the whole module.
func under(pkg, dir string) bool {
	return dir == "" || pkg == dir || strings.HasPrefix(pkg, dir+"/")
}
