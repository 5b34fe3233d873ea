package queries

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/manifests"
)

var (
	lpNow  = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	lpOpts = LeastPrivilegeOptions{Now: lpNow, UnusedFor: 90 * 24 * time.Hour, ObservedSince: lpNow.AddDate(0, -6, 0)}
)

// leastPrivSnapshot is kubeadm's RBAC, argo-cd's (a controller holding '*') and testdata/leastpriv/cluster.yaml.
func leastPrivSnapshot(t testing.TB) *graph.Snapshot {
	t.Helper()
	ctx := context.Background()
	objs := kubeadmObjects(t)
	argo, err := manifests.Load(ctx, fixtures.FS, []string{fixtures.RealWorldDir + "/argo-cd.yaml"},
		fixtures.InstallNamespace("argo-cd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs.Append(argo)
	own, err := manifests.Load(ctx, nil, []string{"testdata/leastpriv/cluster.yaml"}, "")
	if err != nil {
		t.Fatal(err)
	}
	objs.Append(own)
	return graph.NewSnapshot(objs)
}

// lpKey parses "verb group/resource[/sub][:name][@namespace]" ("core" is the core group) or "verb /url".
func lpKey(t testing.TB, s string) graph.UsageKey {
	t.Helper()
	verb, target, ok := strings.Cut(s, " ")
	if !ok {
		t.Fatalf("bad key %q", s)
	}
	if strings.HasPrefix(target, "/") {
		return graph.UsageKey{Verb: verb, NonResourceURL: target}
	}
	k := graph.UsageKey{Verb: verb}
	target, k.Namespace, _ = strings.Cut(target, "@")
	target, k.Name, _ = strings.Cut(target, ":")
	parts := strings.Split(target, "/")
	if len(parts) < 2 || len(parts) > 3 {
		t.Fatalf("bad key %q", s)
	}
	k.APIGroup, k.Resource = strings.TrimPrefix(parts[0], "core"), parts[1]
	if len(parts) == 3 {
		k.Subresource = parts[2]
	}
	return k
}

// lpUse is a usage record of user for key s, last seen daysAgo days before lpNow.
func lpUse(t testing.TB, user, s string, daysAgo int) graph.Usage {
	last := lpNow.AddDate(0, 0, -daysAgo)
	return graph.Usage{Principal: user, UsageKey: lpKey(t, s), First: last.AddDate(0, 0, -1), Last: last}
}

func lpGroup(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

// lpHeldString renders an entry as "<scope> <verb> <group>/<resource>[ names=…]" or "<scope> <verb> <url>", scope
// "*" for cluster-wide.
func lpHeldString(h HeldPermission) string {
	scope := h.Namespace
	if scope == "" {
		scope = "*"
	}
	if h.NonResourceURL != "" {
		return scope + " " + h.Verb + " " + h.NonResourceURL
	}
	s := scope + " " + h.Verb + " " + lpGroup(h.APIGroup) + "/" + h.Resource
	if len(h.ResourceNames) > 0 {
		s += fmt.Sprintf(" names=%q", h.ResourceNames)
	}
	return s
}

// lpRuleString renders a rule as "<group> <resources> <verbs>[ names=…]" or "url <urls> <verbs>".
func lpRuleString(r rbacv1.PolicyRule) string {
	if len(r.NonResourceURLs) > 0 {
		return "url " + strings.Join(r.NonResourceURLs, ",") + " " + strings.Join(r.Verbs, ",")
	}
	var groups []string
	for _, g := range r.APIGroups {
		groups = append(groups, lpGroup(g))
	}
	s := strings.Join(groups, ",") + " " + strings.Join(r.Resources, ",") + " " + strings.Join(r.Verbs, ",")
	if r.ResourceNames != nil {
		s += fmt.Sprintf(" names=%q", r.ResourceNames)
	}
	return s
}

func lpSuggestedRules(rep *LeastPrivilegeReport) map[string][]string {
	out := map[string][]string{}
	for _, s := range rep.Suggested {
		for _, r := range s.Role.Rules {
			out[s.Role.Namespace] = append(out[s.Role.Namespace], lpRuleString(r))
		}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	snap := leastPrivSnapshot(t)
	const (
		web      = "system:serviceaccount:app:web"
		lister   = "system:serviceaccount:app:lister"
		debugger = "system:serviceaccount:ops:debugger"
		argo     = "system:serviceaccount:argocd:argocd-application-controller"
		alice    = "alice@example.com"
	)
	aliceID := graph.ImpersonatedIdentity(alice, nil)
	root := graph.Identity{User: "root", Groups: []string{graph.GroupMasters, graph.GroupAuthenticated}}
	type kept struct {
		held       string
		narrowedBy []string
	}
	tests := []struct {
		name  string
		id    graph.Identity
		usage func(t *testing.T) []graph.Usage
		// wantUnused is the unused entries the identity's own bindings grant (grants through groups are
		// checked by the invariants only); nil skips the check.
		wantUnused     []string
		wantRules      map[string][]string // scope ("" for the ClusterRole) → rules
		wantNotGranted []string
		wantKept       []kept // entries of Diff.Kept to look at
		wantStale      int
		wantSuperuser  bool
	}{{
		name: "role",
		id:   graph.ServiceAccountIdentity("app", "web"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{lpUse(t, web, "get core/pods@app", 1), lpUse(t, web, "list core/pods@app", 10)}
		},
		wantUnused: []string{"app watch core/pods", "app create core/pods", "app delete core/pods",
			`app get core/secrets names=["db-creds"]`},
		wantRules: map[string][]string{"app": {"core pods get,list"}},
		wantKept:  []kept{{"app get core/pods", nil}, {"app list core/pods", nil}},
	}, {
		name: "wildcard",
		id:   graph.ServiceAccountIdentity("argocd", "argocd-application-controller"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{
				lpUse(t, argo, "get core/pods@default", 1),
				lpUse(t, argo, "get core/pods/log@default", 2),
				lpUse(t, argo, "create core/pods/exec@default", 3),
				lpUse(t, argo, "list apps/deployments", 4),
				lpUse(t, argo, "get /metrics", 5),
			}
		},
		wantRules: map[string][]string{
			"":        {"apps deployments list", "url /metrics get"},
			"default": {"core pods,pods/log get", "core pods/exec create"},
		},
		wantKept: []kept{
			{"* * */*", []string{"verb", "apiGroup", "resource"}},
			{"* * *", []string{"verb", "nonResourceURL"}},
		},
	}, {
		name: "subresources, names, cluster-wide list and URLs",
		id:   graph.ServiceAccountIdentity("ops", "debugger"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{
				lpUse(t, debugger, "get core/pods@dev", 1),
				lpUse(t, debugger, "get core/pods/log@dev", 1),
				lpUse(t, debugger, "create core/pods/exec@dev", 1),
				lpUse(t, debugger, "patch apps/deployments/scale@dev", 1),
				lpUse(t, debugger, "get core/configmaps:a@dev", 1),
				lpUse(t, debugger, "update core/configmaps:b@dev", 1),
				lpUse(t, debugger, "list core/pods", 1),
				lpUse(t, debugger, "watch core/pods", 1),
				lpUse(t, debugger, "list core/pods@dev", 1), // the ClusterRole's list covers it
				lpUse(t, debugger, "get core/nodes/metrics", 1),
				lpUse(t, debugger, "get /metrics", 1),
				lpUse(t, debugger, "get /healthz/ready", 1),
			}
		},
		wantUnused: []string{"dev get apps/*/scale", "dev get core/nodes/metrics", "dev get /metrics", "dev get /healthz*"},
		wantRules: map[string][]string{
			"": {"core nodes/metrics get", "core pods list,watch", "url /healthz/ready,/metrics get"},
			"dev": {`core configmaps get names=["a"]`, `core configmaps update names=["b"]`, "core pods,pods/log get",
				"core pods/exec create", "apps deployments/scale patch"},
		},
		wantKept: []kept{
			{"* list core/pods", nil},
			{"* get /healthz*", []string{"nonResourceURL"}},
			{"dev patch apps/*/scale", []string{"resource"}},
			{`dev get core/configmaps names=["a" "b" "c"]`, []string{"resourceNames"}},
		},
	}, {
		name: "aggregated",
		id:   aliceID,
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{
				lpUse(t, alice, "get core/configmaps@dev", 1),
				lpUse(t, alice, "list core/pods@dev", 1),
				lpUse(t, alice, "update apps/deployments@dev", 1),
				lpUse(t, alice, "get core/pods@prod", 1),
				lpUse(t, alice, "delete core/pods@prod", 1),   // view does not delete
				lpUse(t, alice, "get core/secrets@prod", 1),   // view does not read secrets
				lpUse(t, alice, "get core/pods@dev", 200),     // before the window
				lpUse(t, "bob", "delete core/pods@dev", 1),    // someone else's
				lpUse(t, alice, "get core/configmaps@dev", 2), // an older record of the same key
			}
		},
		wantRules: map[string][]string{
			"dev":  {"core configmaps get", "core pods list", "apps deployments update"},
			"prod": {"core pods get"},
		},
		wantNotGranted: []string{"delete core/pods@prod", "get core/secrets@prod"},
		wantKept:       []kept{{"dev update apps/deployments", []string{}}},
		wantStale:      1,
	}, {
		name: "stale",
		id:   graph.ServiceAccountIdentity("app", "web"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{lpUse(t, web, "get core/pods@app", 91)}
		},
		wantUnused: []string{"app get core/pods", "app list core/pods", "app watch core/pods", "app create core/pods",
			"app delete core/pods", `app get core/secrets names=["db-creds"]`},
		wantRules: map[string][]string{},
		wantStale: 1,
	}, {
		name: "not granted",
		id:   graph.ServiceAccountIdentity("app", "web"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{
				lpUse(t, web, "get core/secrets:db-creds@app", 1),
				lpUse(t, web, "get core/secrets:other@app", 1),
				lpUse(t, web, "get core/pods@prod", 1),
			}
		},
		wantUnused: []string{"app get core/pods", "app list core/pods", "app watch core/pods", "app create core/pods",
			"app delete core/pods"},
		wantRules:      map[string][]string{"app": {`core secrets get names=["db-creds"]`}},
		wantNotGranted: []string{"get core/secrets:other@app", "get core/pods@prod"},
		wantKept:       []kept{{`app get core/secrets names=["db-creds"]`, nil}},
	}, {
		name: "empty name",
		id:   graph.ServiceAccountIdentity("app", "lister"),
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{lpUse(t, lister, "list core/configmaps@app", 1), lpUse(t, lister, "list core/secrets@app", 1)}
		},
		wantUnused: []string{},
		wantRules:  map[string][]string{"app": {`core configmaps list names=[""]`, "core secrets list"}},
	}, {
		// kubeadm binds cluster-admin to system:masters: RBAC grants its members everything too.
		name: "superuser",
		id:   root,
		usage: func(t *testing.T) []graph.Usage {
			return []graph.Usage{lpUse(t, "root", "get core/pods@default", 1), lpUse(t, "root", "get /api", 1)}
		},
		wantUnused:    []string{},
		wantRules:     map[string][]string{"": {"url /api get"}, "default": {"core pods get"}},
		wantSuperuser: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			usage := tt.usage(t)
			rep, err := LeastPrivilege(context.Background(), snap, tt.id, usage, lpOpts)
			if err != nil {
				t.Fatal(err)
			}
			checkLeastPrivilege(t, snap, tt.id, usage, lpOpts, rep)

			if tt.wantUnused != nil {
				var got []string
				for _, h := range rep.Unused {
					if !h.Shared {
						got = append(got, lpHeldString(h))
					}
				}
				if diff := cmp.Diff(tt.wantUnused, got, lpEmptyEqual()); diff != "" {
					t.Errorf("unused entries of own bindings (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantRules, lpSuggestedRules(rep)); diff != "" {
				t.Errorf("suggested rules (-want +got):\n%s", diff)
			}
			var notGranted []string
			for _, k := range tt.wantNotGranted {
				notGranted = append(notGranted, fmt.Sprint(lpKey(t, k)))
			}
			var gotNotGranted []string
			for _, k := range rep.NotGrantedByRBAC {
				gotNotGranted = append(gotNotGranted, fmt.Sprint(k))
			}
			if diff := cmp.Diff(notGranted, gotNotGranted); diff != "" {
				t.Errorf("NotGrantedByRBAC (-want +got):\n%s", diff)
			}
			for _, w := range tt.wantKept {
				i := slices.IndexFunc(rep.Diff.Kept, func(k KeptPermission) bool { return lpHeldString(k.HeldPermission) == w.held })
				if i < 0 {
					t.Errorf("Diff.Kept has no %q", w.held)
					continue
				}
				k := rep.Diff.Kept[i]
				if diff := cmp.Diff(w.narrowedBy, k.NarrowedBy, lpEmptyEqual()); diff != "" || k.Narrowed != (len(w.narrowedBy) > 0) {
					t.Errorf("%s: Narrowed=%v NarrowedBy (-want +got):\n%s", w.held, k.Narrowed, diff)
				}
			}
			if got, want := rep.Summary.StaleKeys, tt.wantStale; got != want {
				t.Errorf("StaleKeys=%d, want %d", got, want)
			}
			if got, want := rep.Superuser, tt.wantSuperuser; got != want {
				t.Errorf("Superuser=%v, want %v", got, want)
			}
		})
	}
}

// lpEmptyEqual makes nil and empty slices equal: "nothing" is the same answer either way.
func lpEmptyEqual() cmp.Option {
	return cmp.FilterValues(func(x, y []string) bool { return len(x) == 0 && len(y) == 0 }, cmp.Ignore())
}

// TestLeastPrivilegeDetails checks the parts the table does not: the manifest text, LastUsed and UsedBy,
// aggregation provenance, shared grants, the window's evidence and the summary.
func TestLeastPrivilegeDetails(t *testing.T) {
	snap := leastPrivSnapshot(t)
	ctx := context.Background()
	const web = "system:serviceaccount:app:web"
	id := graph.ServiceAccountIdentity("app", "web")

	t.Run("yaml", func(t *testing.T) {
		rep, err := LeastPrivilege(ctx, snap, id, []graph.Usage{lpUse(t, web, "get core/pods@app", 1),
			lpUse(t, web, "list core/pods@app", 1), lpUse(t, web, "get core/secrets:db-creds@app", 1)}, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		want := `# Generated by kiem from audit usage from 2025-03-03T00:00:00Z to 2025-06-01T00:00:00Z (90d); observed since 2024-12-01T00:00:00Z, the whole window.
# Least-privilege RBAC for system:serviceaccount:app:web: what it used and RBAC grants, nothing more. Review before applying;
# usage RBAC did not grant (other authorizers, system:masters) is left out.
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kiem-least-app.web
  namespace: app
rules:
- apiGroups:
  - ""
  resources:
  - pods
  verbs:
  - get
  - list
- apiGroups:
  - ""
  resourceNames:
  - db-creds
  resources:
  - secrets
  verbs:
  - get
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kiem-least-app.web
  namespace: app
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kiem-least-app.web
subjects:
- kind: ServiceAccount
  name: web
  namespace: app
`
		if diff := cmp.Diff(want, rep.YAML); diff != "" {
			t.Errorf("YAML (-want +got):\n%s", diff)
		}
	})

	t.Run("last used and used by", func(t *testing.T) {
		var usage []graph.Usage
		for i := range 30 {
			usage = append(usage, lpUse(t, web, fmt.Sprintf("get core/pods:p%02d@app", i), 1+i))
		}
		usage = append(usage, lpUse(t, web, "list core/pods@app", 120))
		rep, err := LeastPrivilege(ctx, snap, id, usage, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]HeldPermission{}
		for _, h := range rep.Held {
			byName[lpHeldString(h)] = h
		}
		get := byName["app get core/pods"]
		if got, want := len(get.UsedBy), maxUsedBy; got != want || get.Uses != 30 || !get.Used {
			t.Errorf("get pods: len(UsedBy)=%d Uses=%d Used=%v, want %d, 30, true", got, get.Uses, get.Used, want)
		}
		if get.UsedBy[0].Name != "p00" || get.LastUsed == nil || !get.LastUsed.Equal(lpNow.AddDate(0, 0, -1)) {
			t.Errorf("get pods: UsedBy[0]=%v LastUsed=%v, want p00 and a day ago", get.UsedBy[0], get.LastUsed)
		}
		list := byName["app list core/pods"]
		if list.Used || list.LastUsed == nil || !list.LastUsed.Equal(lpNow.AddDate(0, 0, -120)) || len(list.UsedBy) != 0 {
			t.Errorf("list pods: Used=%v LastUsed=%v UsedBy=%v, want unused, last used 120 days ago", list.Used, list.LastUsed, list.UsedBy)
		}
		if watch := byName["app watch core/pods"]; watch.LastUsed != nil {
			t.Errorf("watch pods: LastUsed=%v, want nil", watch.LastUsed)
		}
		// Named keys of a grant without resourceNames are suggested by name: the grant is narrowed to them.
		if got, want := lpSuggestedRules(rep)["app"], []string{fmt.Sprintf("core pods get names=%q", lpPodNames(30))}; !slices.Equal(got, want) {
			t.Errorf("app rules=%v, want %v", got, want)
		}
	})

	t.Run("aggregation and shared grants", func(t *testing.T) {
		alice := graph.ImpersonatedIdentity("alice@example.com", nil)
		rep, err := LeastPrivilege(ctx, snap, alice, []graph.Usage{
			lpUse(t, "alice@example.com", "update apps/deployments@dev", 1),
			lpUse(t, "alice@example.com", "get /version", 1),
		}, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rep.Held, func(h HeldPermission) bool { return lpHeldString(h) == "dev update apps/deployments" })
		if i < 0 {
			t.Fatal("no held entry for update deployments in dev")
		}
		h := rep.Held[i]
		if h.AggregatedFrom == nil || h.AggregatedFrom.Name != "system:aggregate-to-edit" || h.Role.Name != "edit" || h.Shared {
			t.Errorf("update deployments: role %v aggregated from %v shared %v, want edit from system:aggregate-to-edit, not shared",
				h.Role, h.AggregatedFrom, h.Shared)
		}
		i = slices.IndexFunc(rep.Held, func(h HeldPermission) bool { return lpHeldString(h) == "* get /version" && h.Used })
		if i < 0 || !rep.Held[i].Shared || rep.Held[i].Subject.Kind != rbacv1.GroupKind {
			t.Errorf("get /version: want a used grant through a group, marked shared")
		}
		if !strings.HasPrefix(rep.Suggested[0].Role.Name, "kiem-least-alice-example.com-") {
			t.Errorf("role name %q, want kiem-least-alice-example.com-<hash>", rep.Suggested[0].Role.Name)
		}
		if got, want := rep.Suggested[0].Binding.Subjects, []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice@example.com"}}; !cmp.Equal(got, want) {
			t.Errorf("subjects=%v, want %v", got, want)
		}
	})

	t.Run("ineffective", func(t *testing.T) {
		rep, err := LeastPrivilege(ctx, snap, graph.ServiceAccountIdentity("ops", "debugger"), nil, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range rep.Held {
			if got, want := h.Ineffective, h.NonResourceURL != "" && h.Namespace != ""; got != want {
				t.Errorf("%s: Ineffective=%v, want %v", lpHeldString(h), got, want)
			}
		}
		if len(rep.Suggested) != 0 || !strings.Contains(rep.YAML, "nothing suggested") {
			t.Errorf("no usage: Suggested=%v YAML=%q, want nothing", rep.Suggested, rep.YAML)
		}
	})

	t.Run("json", func(t *testing.T) {
		// GraphQL and the CLI render the report as JSON: empty lists are lists, and kept entries read flat.
		rep, err := LeastPrivilege(ctx, snap, id, []graph.Usage{lpUse(t, web, "get core/pods@app", 1)}, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		kept := back["diff"].(map[string]any)["kept"].([]any)[0].(map[string]any)
		if kept["verb"] != "get" || kept["resource"] != "pods" || kept["narrowed"] != false {
			t.Errorf("kept entry JSON %v, want verb, resource and narrowed at the top", kept)
		}
		empty, err := LeastPrivilege(ctx, snap, graph.Identity{User: "nobody"}, nil, lpOpts)
		if err != nil {
			t.Fatal(err)
		}
		b, err = json.Marshal(empty)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"held":[]`, `"unused":[]`, `"suggested":[]`, `"removed":[]`, `"kept":[]`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("JSON of an empty report lacks %s: %s", want, b)
			}
		}
	})

	t.Run("window", func(t *testing.T) {
		for _, tt := range []struct {
			since    time.Time
			complete bool
			evidence string
		}{
			{time.Time{}, false, "when audit observation began is unknown"},
			{lpNow.AddDate(0, 0, -90), true, "the whole window"},
			{lpNow.AddDate(0, 0, -30), false, "observed only since 2025-05-02T00:00:00Z, the last 30d of the window"},
		} {
			opts := lpOpts
			opts.ObservedSince = tt.since
			rep, err := LeastPrivilege(ctx, snap, id, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Window.Complete != tt.complete || !strings.Contains(rep.Window.Evidence, tt.evidence) ||
				!strings.Contains(rep.YAML, rep.Window.Evidence) {
				t.Errorf("since %v: Window=%+v, want complete=%v and %q, in the YAML header", tt.since, rep.Window, tt.complete, tt.evidence)
			}
		}
	})
}

func lpPodNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("p%02d", i))
	}
	return out
}

func TestLeastPrivilegeErrors(t *testing.T) {
	snap := leastPrivSnapshot(t)
	id := graph.ServiceAccountIdentity("app", "web")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		snap *graph.Snapshot
		id   graph.Identity
		opts LeastPrivilegeOptions
		want string
	}{
		{"no now", context.Background(), snap, id, LeastPrivilegeOptions{UnusedFor: time.Hour}, "Now is not set"},
		{"no window", context.Background(), snap, id, LeastPrivilegeOptions{Now: lpNow}, "UnusedFor must be positive"},
		{"negative window", context.Background(), snap, id, LeastPrivilegeOptions{Now: lpNow, UnusedFor: -time.Hour}, "UnusedFor must be positive"},
		{"no user", context.Background(), snap, graph.Identity{}, lpOpts, "no user name"},
		{"no snapshot", context.Background(), nil, id, lpOpts, "no snapshot"},
		{"canceled", canceled, snap, id, lpOpts, context.Canceled.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := LeastPrivilege(tt.ctx, tt.snap, tt.id, nil, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || rep != nil {
				t.Fatalf("LeastPrivilege()=%v, %v; want error %q", rep, err, tt.want)
			}
		})
	}
}

func TestLeastPrivilegeNames(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tt := range []struct {
		user, want string
	}{
		{"system:serviceaccount:app:web", "kiem-least-app.web"},
		{"system:serviceaccount:a-b:c", "kiem-least-a-b.c"},
		{"system:serviceaccount:a:b-c", "kiem-least-a.b-c"},
		{"alice", "kiem-least-alice"},
		{"alice.smith", "kiem-least-alice.smith"},
		{"Alice", "kiem-least-alice-"},
		{"alice@example.com", "kiem-least-alice-example.com-"},
		{"system:kube-scheduler", "kiem-least-system-kube-scheduler-"},
		{":::", "kiem-least-user-"},
		{"-.a..b.-", "kiem-least-a.b-"},
		{"system:serviceaccount:app:" + long[:253], "kiem-least-app." + strings.Repeat("a", 200)},
		{long, "kiem-least-" + strings.Repeat("a", 200)},
	} {
		t.Run(tt.user[:min(len(tt.user), 30)], func(t *testing.T) {
			got := suggestedName(tt.user)
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("suggestedName(%q)=%q: %v", tt.user, got, errs)
			}
			if !strings.HasPrefix(got, tt.want) || (!strings.HasSuffix(tt.want, "-") && len(tt.want) < 200 && got != tt.want) {
				t.Errorf("suggestedName(%q)=%q, want %q(+hash)", tt.user, got, tt.want)
			}
			if got != suggestedName(tt.user) {
				t.Errorf("suggestedName(%q) is not deterministic", tt.user)
			}
		})
	}
	// Users that sanitise alike keep apart by their hash.
	seen := map[string]string{}
	for _, u := range []string{"alice", "Alice", "ALICE", "alice@x", "alice:x", "alice-x", "system:serviceaccount:a-b:c", "system:serviceaccount:a:b-c"} {
		n := suggestedName(u)
		if other, ok := seen[n]; ok {
			t.Errorf("%q and %q share the name %q", u, other, n)
		}
		seen[n] = u
	}
}

// TestLeastPrivilegeRealWorld runs LeastPrivilege for every user and ServiceAccount the kubeadm and real-world
// fixtures bind, over usage drawn from their own grants (wildcards made concrete, names and namespaces
// picked), mixed with requests RBAC does not grant, usage older than the window and other principals' usage,
// and checks the report's properties.
func TestLeastPrivilegeRealWorld(t *testing.T) {
	ctx := context.Background()
	objs := kubeadmObjects(t)
	entries, err := fixtures.FS.ReadDir(fixtures.RealWorldDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		o, err := manifests.Load(ctx, fixtures.FS, []string{fixtures.RealWorldDir + "/" + e.Name()}, fixtures.InstallNamespace(e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		objs.Append(o)
	}
	snap := graph.NewSnapshot(objs)

	var ids []graph.Identity
	seen := map[string]bool{}
	for _, bs := range [][]graph.Binding{snap.Objects().ClusterRoleBindings, snap.Objects().RoleBindings} {
		for _, b := range bs {
			for _, s := range b.Subjects {
				var id graph.Identity
				switch s.Kind {
				case rbacv1.ServiceAccountKind:
					ns := s.Namespace
					if ns == "" {
						ns = b.Namespace
					}
					id = graph.ServiceAccountIdentity(ns, s.Name)
				case rbacv1.UserKind:
					id = graph.ImpersonatedIdentity(s.Name, nil)
				default:
					continue
				}
				if !seen[id.User] {
					seen[id.User] = true
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) < 50 {
		t.Fatalf("%d identities, want the fixtures' 50 or more", len(ids))
	}
	namespaces := []string{"", "default", "kube-system", "monitoring", "argocd"}
	cases := map[string]int{"a ClusterRole": 0, "a Role": 0, "a named rule": 0, "a URL rule": 0, "a subresource rule": 0,
		"unused entries": 0, "a narrowed entry": 0, "stale keys": 0, "an aggregated grant": 0, "a shared grant": 0}
	seenCase := func(rep *LeastPrivilegeReport) {
		for _, s := range rep.Suggested {
			cases["a "+string(s.Role.Kind)]++
			for _, r := range s.Role.Rules {
				if len(r.ResourceNames) > 0 {
					cases["a named rule"]++
				}
				if len(r.NonResourceURLs) > 0 {
					cases["a URL rule"]++
				}
				if slices.ContainsFunc(r.Resources, func(res string) bool { return strings.Contains(res, "/") }) {
					cases["a subresource rule"]++
				}
			}
		}
		if len(rep.Unused) > 0 {
			cases["unused entries"]++
		}
		if slices.ContainsFunc(rep.Diff.Kept, func(k KeptPermission) bool { return k.Narrowed }) {
			cases["a narrowed entry"]++
		}
		if rep.Summary.StaleKeys > 0 {
			cases["stale keys"]++
		}
		for _, h := range rep.Held {
			if h.Used && h.AggregatedFrom != nil {
				cases["an aggregated grant"]++
			}
			if h.Used && h.Shared {
				cases["a shared grant"]++
			}
		}
	}
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 7))
		for _, id := range ids {
			perms, err := snap.EffectivePermissions(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var usage []graph.Usage
			for _, p := range perms {
				if r.IntN(3) == 0 {
					continue
				}
				k, ok := lpConcreteKey(r, p, namespaces)
				if !ok {
					continue
				}
				last := lpNow.Add(-time.Duration(r.Int64N(int64(2 * lpOpts.UnusedFor))))
				usage = append(usage, graph.Usage{Principal: id.User, UsageKey: k, First: last, Last: last})
			}
			// RBAC grants none of these to anyone in the fixtures.
			for range 3 {
				k := graph.UsageKey{Verb: "escalate", APIGroup: "example.com", Resource: "widgets",
					Namespace: namespaces[r.IntN(len(namespaces))]}
				usage = append(usage, graph.Usage{Principal: id.User, UsageKey: k, Last: lpNow})
			}
			usage = append(usage, graph.Usage{Principal: "someone-else", UsageKey: graph.UsageKey{Verb: "get", Resource: "pods"}, Last: lpNow})
			rep, err := LeastPrivilege(ctx, snap, id, usage, lpOpts)
			if err != nil {
				t.Fatalf("%s: %v", id.User, err)
			}
			checkLeastPrivilege(t, snap, id, usage, lpOpts, rep)
			seenCase(rep)
		}
	}
	// The draw must have reached every kind of case, or the properties above were checked on too little.
	for c, n := range cases {
		if n == 0 {
			t.Errorf("no report had %s", c)
		}
	}
}

// lpConcreteKey draws a request permission p allows, as an audit event would show it: wildcards replaced by
// concrete values, a name only when the rule lists names.
func lpConcreteKey(r *rand.Rand, p graph.Permission, namespaces []string) (graph.UsageKey, bool) {
	pick := func(ss []string) string { return ss[r.IntN(len(ss))] }
	rule := p.Rule
	if len(rule.Verbs) == 0 {
		return graph.UsageKey{}, false
	}
	verb := pick(rule.Verbs)
	if verb == rbacv1.VerbAll {
		verb = pick([]string{"get", "list", "delete", "impersonate"})
	}
	if len(rule.NonResourceURLs) > 0 && (len(rule.Resources) == 0 || r.IntN(2) == 0) {
		url := pick(rule.NonResourceURLs)
		if strings.HasSuffix(url, "*") {
			url = strings.TrimRight(url, "*") + "x/y"
			if !strings.HasPrefix(url, "/") {
				url = "/" + url
			}
		}
		return graph.UsageKey{Verb: verb, NonResourceURL: url}, true
	}
	if len(rule.Resources) == 0 || len(rule.APIGroups) == 0 {
		return graph.UsageKey{}, false
	}
	k := graph.UsageKey{Verb: verb, APIGroup: pick(rule.APIGroups)}
	if k.APIGroup == rbacv1.APIGroupAll {
		k.APIGroup = pick([]string{"", "apps", "batch"})
	}
	res := pick(rule.Resources)
	switch {
	case res == rbacv1.ResourceAll:
		res = pick([]string{"pods", "secrets", "pods/exec", "deployments/scale"})
	case strings.HasPrefix(res, "*/"):
		res = "pods" + res[1:]
	}
	k.Resource, k.Subresource, _ = strings.Cut(res, "/")
	if len(rule.ResourceNames) > 0 {
		k.Name = pick(rule.ResourceNames)
	}
	k.Namespace = p.Namespace
	if k.Namespace == "" {
		k.Namespace = pick(namespaces)
	}
	return k, true
}

// checkLeastPrivilege checks the properties every report must have.
func checkLeastPrivilege(t *testing.T, snap *graph.Snapshot, id graph.Identity, usage []graph.Usage, opts LeastPrivilegeOptions, rep *LeastPrivilegeReport) {
	t.Helper()
	from := opts.Now.Add(-opts.UnusedFor)
	counted := map[graph.UsageKey]bool{}
	for _, u := range usage {
		if (u.Principal == "" || u.Principal == id.User) && !u.Last.Before(from) {
			counted[u.UsageKey] = true
		}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{id.User}, args...)...)
	}

	// Held: Used exactly when a counted key falls under the entry, where it is granted.
	for _, h := range rep.Held {
		want := false
		for k := range counted {
			want = want || lpHeldAllows(h, k)
		}
		if h.Used != want || h.Used != (h.Uses > 0) || len(h.UsedBy) != min(h.Uses, maxUsedBy) {
			fail("%s: Used=%v Uses=%d len(UsedBy)=%d, want used=%v", lpHeldString(h), h.Used, h.Uses, len(h.UsedBy), want)
		}
		if h.Used && (h.LastUsed == nil || h.LastUsed.Before(from)) {
			fail("%s: used, last used %v", lpHeldString(h), h.LastUsed)
		}
		if h.Shared != (h.Subject.Kind == rbacv1.GroupKind) {
			fail("%s: Shared=%v through %v", lpHeldString(h), h.Shared, h.Subject)
		}
	}
	var unused []HeldPermission
	for _, h := range rep.Held {
		if !h.Used {
			unused = append(unused, h)
		}
	}
	// reflect.DeepEqual first: cmp.Diff over every report of the fixtures is slow under -race.
	if (len(unused) > 0 || len(rep.Unused) > 0) && !reflect.DeepEqual(unused, rep.Unused) {
		fail("Unused is not Held's unused entries (-want +got):\n%s", cmp.Diff(unused, rep.Unused))
	}
	var removed []HeldPermission
	for i, s := range rep.Diff.Removed {
		if i > 0 && rep.Diff.Removed[i-1].Namespace >= s.Namespace {
			fail("Diff.Removed scopes out of order at %q", s.Namespace)
		}
		for _, h := range s.Permissions {
			if h.Namespace != s.Namespace {
				fail("Diff.Removed: %s under scope %q", lpHeldString(h), s.Namespace)
			}
		}
		removed = append(removed, s.Permissions...)
	}
	if len(removed) != len(rep.Unused) || len(rep.Diff.Kept) != len(rep.Held)-len(rep.Unused) {
		fail("Diff: %d removed, %d kept, want %d and %d", len(removed), len(rep.Diff.Kept), len(rep.Unused), len(rep.Held)-len(rep.Unused))
	}
	for _, k := range rep.Diff.Kept {
		if !k.Used || k.Narrowed != (len(k.NarrowedBy) > 0) {
			fail("Diff.Kept %s: Used=%v Narrowed=%v NarrowedBy=%v", lpHeldString(k.HeldPermission), k.Used, k.Narrowed, k.NarrowedBy)
		}
		if wild := k.Verb == "*" || k.APIGroup == "*" || k.Resource == "*" || strings.HasSuffix(k.NonResourceURL, "*"); wild && !k.Narrowed {
			fail("Diff.Kept %s: a wildcard kept without narrowing", lpHeldString(k.HeldPermission))
		}
	}
	if s := rep.Summary; s.Held != len(rep.Held) || s.Unused != len(rep.Unused) || s.Used != s.Held-s.Unused ||
		s.UsageKeys != len(counted) || s.NotGrantedByRBAC != len(rep.NotGrantedByRBAC) {
		fail("Summary %+v does not add up (held %d, unused %d, keys %d)", s, len(rep.Held), len(rep.Unused), len(counted))
	}

	// Every counted key is suggested, not granted by RBAC, or unrepresentable; suggested keys are granted.
	fresh := lpFreshSnapshot(rep)
	freshID := graph.Identity{User: id.User} // bound by the suggestion alone: no groups
	covered := map[graph.UsageKey]bool{}
	for _, s := range rep.Suggested {
		for _, k := range s.Covers {
			if !counted[k] || covered[k] {
				fail("suggested %s covers %v: not a counted key, or listed twice", s.Role.Ref(), k)
			}
			covered[k] = true
		}
	}
	for _, k := range rep.NotGrantedByRBAC {
		if d := snap.Can(id, k.Action()); !counted[k] || len(d.Reasons) > 0 || covered[k] {
			fail("NotGrantedByRBAC has %v, which RBAC grants (%d reasons) or is suggested", k, len(d.Reasons))
		}
		covered[k] = true
	}
	for _, k := range rep.Unrepresentable {
		covered[k] = true
	}
	for k := range counted {
		if !covered[k] {
			fail("counted key %v is not accounted for", k)
			continue
		}
		if slices.Contains(rep.Unrepresentable, k) {
			continue
		}
		if d := snap.Can(id, k.Action()); len(d.Reasons) > 0 && !fresh.Can(freshID, k.Action()).Allowed {
			fail("(a) the suggestion does not allow %v, which RBAC grants", k)
		}
		if slices.Contains(rep.NotGrantedByRBAC, k) {
			continue
		}
		// Every granted key falls under a used held entry.
		if !slices.ContainsFunc(rep.Held, func(h HeldPermission) bool { return h.Used && lpHeldAllows(h, k) }) {
			fail("granted key %v is under no used held entry", k)
		}
	}
	// (b) The suggestion allows nothing the identity could not do before.
	for _, s := range rep.Suggested {
		for _, rule := range s.Role.Rules {
			for _, a := range lpRuleActions(rule, s.Role.Namespace) {
				if d := snap.Can(id, a); len(d.Reasons) == 0 {
					fail("(b) suggested %s rule %s allows %+v, which RBAC does not grant now", s.Role.Ref(), lpRuleString(rule), a)
				}
			}
		}
		if s.Role.Name != s.Binding.Name || s.Binding.RoleRef.Name != s.Role.Name || s.Binding.RoleRef.Kind != string(s.Role.Kind) {
			fail("suggested binding %v does not reference role %v", s.Binding.Ref(), s.Role.Ref())
		}
		if errs := validation.IsDNS1123Subdomain(s.Role.Name); len(errs) > 0 {
			fail("suggested name %q: %v", s.Role.Name, errs)
		}
	}
	checkLeastPrivilegeYAML(t, rep)

	// Deterministic whatever the order of the usage records.
	shuffled := slices.Clone(usage)
	slices.Reverse(shuffled)
	again, err := LeastPrivilege(context.Background(), snap, id, shuffled, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep, again) {
		fail("report depends on the order of usage (-first +reversed):\n%s", cmp.Diff(rep, again))
	}
}

// lpHeldAllows is the test's own reading of "k falls under h": h's rule allows k where h is granted.
func lpHeldAllows(h HeldPermission, k graph.UsageKey) bool {
	rule := h.Rule()
	inScope := h.Namespace == "" || k.NonResourceURL == "" && k.Namespace == h.Namespace
	return inScope && graph.RuleAllows(&rule, k.Action())
}

// lpFreshSnapshot holds the suggested objects only.
func lpFreshSnapshot(rep *LeastPrivilegeReport) *graph.Snapshot {
	return graph.NewSnapshot(&graph.Objects{}).Apply(rep.Changes())
}

// lpRuleActions expands a suggested rule into the requests it allows in scope: one per verb, group, resource and
// name, and for a rule without names one request without a name and one with a name nobody lists.
func lpRuleActions(r rbacv1.PolicyRule, scope string) []graph.Action {
	var out []graph.Action
	for _, v := range r.Verbs {
		for _, u := range r.NonResourceURLs {
			out = append(out, graph.Action{Verb: v, NonResourceURL: u})
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				names := r.ResourceNames
				if names == nil {
					names = []string{"", "kiem-any-name"}
				}
				for _, n := range names {
					out = append(out, graph.Action{Verb: v, APIGroup: g, Resource: resource, Subresource: sub, Namespace: scope, Name: n})
				}
			}
		}
	}
	return out
}

// checkLeastPrivilegeYAML reads the manifest back: a header comment, then each suggested role and its binding,
// equal to Suggested, with no empty metadata.
func checkLeastPrivilegeYAML(t *testing.T, rep *LeastPrivilegeReport) {
	t.Helper()
	if !strings.HasPrefix(rep.YAML, "# Generated by kiem from audit usage from ") {
		t.Errorf("YAML header: %q", rep.YAML[:min(len(rep.YAML), 80)])
	}
	if strings.Contains(rep.YAML, "creationTimestamp") || strings.Contains(rep.YAML, "null") {
		t.Errorf("YAML has empty metadata:\n%s", rep.YAML)
	}
	docs := strings.Split(rep.YAML, "\n---\n")[1:]
	if got, want := len(docs), 2*len(rep.Suggested); got != want {
		t.Fatalf("YAML has %d documents, want %d", got, want)
	}
	for i, s := range rep.Suggested {
		// A Role and a RoleBinding read as their cluster kinds: the fields are the same.
		var role rbacv1.ClusterRole
		var b rbacv1.ClusterRoleBinding
		if err := yaml.UnmarshalStrict([]byte(docs[2*i]), &role); err != nil {
			t.Fatalf("role document %d: %v", i, err)
		}
		if err := yaml.UnmarshalStrict([]byte(docs[2*i+1]), &b); err != nil {
			t.Fatalf("binding document %d: %v", i, err)
		}
		if role.Kind != string(s.Role.Kind) || role.APIVersion != "rbac.authorization.k8s.io/v1" ||
			role.Name != s.Role.Name || role.Namespace != s.Role.Namespace {
			t.Errorf("role document %d: %+v, want %v", i, role.TypeMeta, s.Role.Ref())
		}
		if diff := cmp.Diff(s.Role.Rules, role.Rules); diff != "" {
			t.Errorf("role document %d rules (-suggested +yaml):\n%s", i, diff)
		}
		if b.Kind != string(s.Binding.Kind) || b.Name != s.Binding.Name || b.Namespace != s.Binding.Namespace ||
			!cmp.Equal(b.RoleRef, s.Binding.RoleRef) || !cmp.Equal(b.Subjects, s.Binding.Subjects) {
			t.Errorf("binding document %d: %+v, want %+v", i, b, s.Binding)
		}
	}
}

func TestLeastPrivilegeCompactRules(t *testing.T) {
	named := func(g, r, v, n string) grantAtom {
		return grantAtom{group: g, resource: r, verb: v, name: n, named: true}
	}
	plain := func(g, r, v string) grantAtom { return grantAtom{group: g, resource: r, verb: v} }
	url := func(u, v string) grantAtom { return grantAtom{url: u, verb: v} }
	for _, tt := range []struct {
		name  string
		atoms []grantAtom
		want  []string
	}{
		{"same verbs merge", []grantAtom{plain("", "pods", "get"), plain("", "pods", "list"), plain("", "services", "list"),
			plain("", "services", "get"), plain("apps", "deployments", "get")},
			[]string{"core pods,services get,list", "apps deployments get"}},
		{"different verbs split", []grantAtom{plain("", "pods", "get"), plain("", "pods", "list"), plain("", "services", "get")},
			[]string{"core pods get,list", "core services get"}},
		{"names per verb", []grantAtom{named("", "configmaps", "get", "a"), named("", "configmaps", "get", "b"),
			named("", "configmaps", "update", "b"), named("", "secrets", "get", "a"), named("", "secrets", "get", "b")},
			[]string{`core configmaps update names=["b"]`, `core configmaps,secrets get names=["a" "b"]`}},
		{"empty name is not no name", []grantAtom{named("", "configmaps", "list", ""), plain("", "secrets", "list")},
			[]string{`core configmaps list names=[""]`, "core secrets list"}},
		{"urls", []grantAtom{url("/metrics", "get"), url("/healthz", "get"), url("/logs", "get"), url("/logs", "post")},
			[]string{"url /healthz,/metrics get", "url /logs get,post"}},
		{"subresources", []grantAtom{plain("", "pods/log", "get"), plain("", "pods", "get"), plain("", "pods/exec", "create")},
			[]string{"core pods,pods/log get", "core pods/exec create"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set := map[grantAtom]bool{}
			for _, a := range tt.atoms {
				set[a] = true
			}
			var got []string
			for _, r := range compactRules(set) {
				got = append(got, lpRuleString(r))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("compactRules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLeastPrivilegeUnrepresentable feeds keys holding '*', which audit events never carry: they must not turn
// into wildcard rules.
func TestLeastPrivilegeUnrepresentable(t *testing.T) {
	snap := leastPrivSnapshot(t)
	const argo = "system:serviceaccount:argocd:argocd-application-controller"
	id := graph.ServiceAccountIdentity("argocd", "argocd-application-controller")
	var usage []graph.Usage
	for _, k := range []graph.UsageKey{
		{Verb: "*", Resource: "pods", Namespace: "default"},
		{Verb: "get", APIGroup: "*", Resource: "pods", Namespace: "default"},
		{Verb: "get", Resource: "*", Namespace: "default"},
		{Verb: "get", Resource: "*", Subresource: "log", Namespace: "default"},
		{Verb: "get", NonResourceURL: "/api*"},
		{Verb: "get", Namespace: "default"},
		{Verb: "get", Resource: "pods", Namespace: "default"},
	} {
		usage = append(usage, graph.Usage{Principal: argo, UsageKey: k, Last: lpNow})
	}
	rep, err := LeastPrivilege(context.Background(), snap, id, usage, lpOpts)
	if err != nil {
		t.Fatal(err)
	}
	checkLeastPrivilege(t, snap, id, usage, lpOpts, rep)
	if got, want := len(rep.Unrepresentable), 6; got != want {
		t.Errorf("%d unrepresentable keys, want %d: %v", got, want, rep.Unrepresentable)
	}
	if diff := cmp.Diff(map[string][]string{"default": {"core pods get"}}, lpSuggestedRules(rep)); diff != "" {
		t.Errorf("suggested rules (-want +got):\n%s", diff)
	}
}
