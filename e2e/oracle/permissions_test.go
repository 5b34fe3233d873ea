package oracle

import (
	"fmt"
	"testing"

	"github.com/kiem-io/kiem/graph"
)

// TestEffectivePermissionsRandomWorlds checks EffectivePermissions against Can (and the oracle) for identities
// outside system:masters: an action is allowed exactly when some permission applies where the action happens
// (cluster-wide, or in the action's namespace for a resource request) and its rule allows the action.
func TestEffectivePermissionsRandomWorlds(t *testing.T) {
	cfg := loadConfig(t, 200, 600)
	identities, actions := 8, max(1, cfg.queries/15)
	var total, mismatches int
	for _, seed := range cfg.seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			gen := w.queryGen(2)
			bad := 0
			for range identities {
				q := gen.Next() // aimed identities too, so that most hold some permissions
				for q.ID.InGroup(graph.GroupMasters) {
					q = gen.Next()
				}
				perms, err := w.snap.EffectivePermissions(t.Context(), q.ID)
				if err != nil {
					t.Fatalf("EffectivePermissions(%s): %v", mustJSON(q.ID), err)
				}
				for i := range actions {
					a := q.Action
					if i > 0 {
						a = gen.Action()
					}
					total++
					byPerms := permitted(perms, a)
					can := w.snap.Can(q.ID, a).Allowed
					want, err := w.oracle.Authorize(t.Context(), q.ID, a)
					if err != nil {
						t.Fatal(err)
					}
					if byPerms == can && can == want.Allowed {
						continue
					}
					bad++
					if bad <= maxReported {
						t.Errorf("%s\nidentity %s action %s: from EffectivePermissions %v, Can %v, oracle %v\n"+
							"permissions:\n%s", w.rerun(t.Name()), mustJSON(q.ID), mustJSON(a), byPerms, can,
							want.Allowed, formatPermissions(perms))
					}
				}
			}
			mismatches += bad
		})
	}
	t.Logf("%d worlds, %d identity×action checks, %d mismatches", len(cfg.seeds), total, mismatches)
}

// permitted reports whether some permission allows a where a happens.
func permitted(perms []graph.Permission, a graph.Action) bool {
	for i := range perms {
		p := &perms[i]
		if (p.Namespace == "" || (a.IsResource() && p.Namespace == a.Namespace)) && p.Rule != nil && graph.RuleAllows(p.Rule, a) {
			return true
		}
	}
	return false
}

func formatPermissions(perms []graph.Permission) string {
	s := ""
	for _, p := range perms {
		s += fmt.Sprintf("  ns=%q %s #%d %s\n", p.Namespace, p.String(), p.RuleIndex, mustJSON(p.Rule))
	}
	return s
}
