package queries

import (
	"testing"

	"cel.dev/cel-go/cel"
)

// TestGuards pins which conjuncts become guards, and that a guard fails exactly when its conjunct is false.
func TestGuards(t *testing.T) {
	tests := []struct {
		expr   string
		guards int
		vars   map[string]any
		hold   bool
	}{
		{"subject.kind == 'Group' && subject.name == 'system:masters'", 2,
			map[string]any{"subject": &Subject{Kind: "Group", Name: "system:masters"}}, true},
		{"subject.kind == 'Group' && subject.name == 'system:masters'", 2,
			map[string]any{"subject": &Subject{Kind: "User", Name: "system:masters"}}, false},
		{"'default' == binding.namespace", 1, map[string]any{"binding": &Binding{Namespace: "default"}}, true},
		{"binding.roleRef.name != 'cluster-admin'", 1, map[string]any{"binding": &Binding{RoleRef: RoleRef{Name: "cluster-admin"}}}, false},
		{"subject.kind == 'ServiceAccount' && !subject.exists", 2,
			map[string]any{"subject": &Subject{Kind: "ServiceAccount", Exists: true}}, false},
		{"subject.kind == 'ServiceAccount' && !subject.exists", 2,
			map[string]any{"subject": &Subject{Kind: "ServiceAccount"}}, true},
		// Not conjuncts of the whole match, or not a field compared with a constant: no guard.
		{"subject.kind == 'Group' || subject.name == 'x'", 0, nil, true},
		{"!(subject.kind == 'Group')", 0, nil, true},
		{"subject.name.startsWith('system:')", 0, nil, true},
		{"subject.name == binding.name", 0, nil, true},
		// A variable that is absent leaves the answer to CEL.
		{"subject.kind == 'Group'", 1, map[string]any{}, true},
	}
	env, err := envFor(TargetBinding)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, ast, err := compileExpr(env, tt.expr, cel.BoolType)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		r := &Rule{guards: guardsOf(ast)}
		if len(r.guards) != tt.guards {
			t.Errorf("%s: %d guards, want %d", tt.expr, len(r.guards), tt.guards)
		}
		if got := r.guardsHold(tt.vars); got != tt.hold {
			t.Errorf("%s on %v: guards hold = %v, want %v", tt.expr, tt.vars, got, tt.hold)
		}
	}
}
