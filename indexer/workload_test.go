package indexer

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

func TestConvertWorkload(t *testing.T) {
	// tmpl is a pod template with a label, the given spec, under the given indentation.
	tmpl := func(indent int, spec string) string {
		p := strings.Repeat(" ", indent)
		return p + "template:\n" + p + "  metadata: {labels: {app: w}}\n" + p + "  spec: " + spec + "\n"
	}
	doc := func(apiVersion, kind, spec string) string {
		return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: w\n  namespace: ns\n" +
			"  labels: {owner: team}\n  annotations: {a: b}\n  uid: u1\nspec:\n" + spec
	}
	pod := func(kind, sa string, automount *bool) *graph.Pod {
		return &graph.Pod{
			Meta:           graph.Meta{Namespace: "ns", Name: strings.ToLower(kind) + "/w", Labels: map[string]string{"app": "w"}, Origin: "f:1"},
			ServiceAccount: sa, AutomountToken: automount, Owner: &graph.OwnerRef{Kind: kind, Name: "w"},
		}
	}
	tests := []struct {
		name string
		doc  string
		want *graph.Pod // nil: skipped
	}{
		{"Deployment", doc("apps/v1", "Deployment", tmpl(2, "{serviceAccountName: web}")), pod("Deployment", "web", nil)},
		{"DaemonSet", doc("apps/v1", "DaemonSet", tmpl(2, "{serviceAccountName: agent, automountServiceAccountToken: false}")),
			pod("DaemonSet", "agent", ptr(false))},
		{"StatefulSet", doc("apps/v1", "StatefulSet", tmpl(2, "{serviceAccountName: db, automountServiceAccountToken: true}")),
			pod("StatefulSet", "db", ptr(true))},
		{"ReplicaSet", doc("apps/v1", "ReplicaSet", tmpl(2, "{serviceAccount: old}")), pod("ReplicaSet", "old", nil)},
		{"ReplicationController", doc("v1", "ReplicationController", tmpl(2, "{serviceAccountName: rc}")),
			pod("ReplicationController", "rc", nil)},
		{"Job", doc("batch/v1", "Job", tmpl(2, "{containers: [{name: c, image: i}]}")), pod("Job", "default", nil)},
		{"CronJob reads the job template", doc("batch/v1", "CronJob", "  schedule: '* * * * *'\n"+tmpl(2, "{serviceAccountName: wrong}")+
			"  jobTemplate:\n    spec:\n"+tmpl(6, "{serviceAccountName: backup}")), pod("CronJob", "backup", nil)},
		{"CronJob v1beta1", doc("batch/v1beta1", "CronJob", "  jobTemplate:\n    spec:\n"+tmpl(6, "{serviceAccountName: backup}")),
			pod("CronJob", "backup", nil)},
		{"old Deployment version", doc("extensions/v1beta1", "Deployment", tmpl(2, "{serviceAccountName: web}")), pod("Deployment", "web", nil)},
		{"no template runs as default", doc("apps/v1", "Deployment", "  replicas: 1\n"),
			&graph.Pod{Meta: graph.Meta{Namespace: "ns", Name: "deployment/w", Origin: "f:1"}, ServiceAccount: "default",
				Owner: &graph.OwnerRef{Kind: "Deployment", Name: "w"}}},
		{"ReplicaSet of a Deployment is skipped", strings.Replace(doc("apps/v1", "ReplicaSet", tmpl(2, "{serviceAccountName: web}")),
			"  uid: u1\n", "  uid: u1\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: w, controller: true}]\n", 1), nil},
		{"StatefulSet of an operator is kept", strings.Replace(doc("apps/v1", "StatefulSet", tmpl(2, "{serviceAccountName: db}")),
			"  uid: u1\n", "  uid: u1\n  ownerReferences: [{apiVersion: example.com/v1, kind: Prometheus, name: k8s, controller: true}]\n", 1),
			pod("StatefulSet", "db", nil)},
	}
	c := &converter{defaultNamespace: "dflt"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := decodeBoth(t, c, tt.doc)
			if len(objs) != 1 {
				t.Fatalf("got %d objects, want 1", len(objs))
			}
			if tt.want == nil {
				if objs[0].value != nil || objs[0].skipped == "" {
					t.Fatalf("got %+v, want it skipped", objs[0])
				}
				return
			}
			if diff := cmp.Diff(tt.want, objs[0].value); diff != "" {
				t.Errorf("template pod (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkloadKind(t *testing.T) {
	tests := []struct {
		t    typeMeta
		want bool
	}{
		{typeMeta{"apps/v1", "Deployment"}, true},
		{typeMeta{"apps/v1beta1", "StatefulSet"}, true},
		{typeMeta{"extensions/v1beta1", "DaemonSet"}, true},
		{typeMeta{"batch/v1", "Job"}, true},
		{typeMeta{"batch/v1beta1", "CronJob"}, true},
		{typeMeta{"v1", "ReplicationController"}, true},
		{typeMeta{"example.com/v1", "Deployment"}, false},
		{typeMeta{"batch/v1beta1", "Job"}, false},
		{typeMeta{"v1", "Deployment"}, false},
		{typeMeta{"apps/v1", "ControllerRevision"}, false},
		{typeMeta{"v1", "PodTemplate"}, false},
	}
	for _, tt := range tests {
		if got := workloadKind(tt.t); got != tt.want {
			t.Errorf("workloadKind(%v)=%v, want %v", tt.t, got, tt.want)
		}
		if kind, ok := loadedKind(tt.t); ok != tt.want || (ok && kind != graph.Kind(tt.t.Kind)) {
			t.Errorf("loadedKind(%v)=%q, %v; want the workload kind: %v", tt.t, kind, ok, tt.want)
		}
	}
}

func TestLoadWorkloads(t *testing.T) {
	const file = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\n" + // 1
		"spec: {template: {spec: {serviceAccountName: web}}}\n" + // 4
		"---\n" + // 5
		"# the database\n" + // 6
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web, namespace: prod}\n" + // 7
		"spec: {template: {spec: {serviceAccountName: db}}}\n" + // 10
		"---\n" + // 11
		"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\nspec: {serviceAccountName: debug}\n" + // 12
		"---\n" + // 16
		"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup}\n" + // 17
		"spec: {jobTemplate: {spec: {template: {spec: {automountServiceAccountToken: false}}}}}\n" + // 20
		"---\n" + // 21
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\n" + // 22: replaces line 1
		"spec: {template: {spec: {serviceAccountName: web2}}}\n" +
		"---\n" +
		"apiVersion: v1\nkind: List\nitems:\n" + // 27
		"- {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: agent, namespace: kube-system}}\n" +
		"- {apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: web-1, namespace: prod, ownerReferences: [{kind: Deployment, name: web, controller: true}]}}\n"
	objs, stats, err := LoadFS(t.Context(), mapFS(map[string]string{"w.yaml": file}), []string{"w.yaml"}, LoadOptions{DefaultNamespace: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Ref, Origin, SA, Owner string }
	var got []row
	for _, p := range objs.Pods {
		owner := "-"
		if p.Owner != nil {
			owner = p.Owner.Kind + "/" + p.Owner.Name
		}
		got = append(got, row{p.Ref().String(), p.Origin, p.ServiceAccount, owner})
	}
	// The Deployment and the StatefulSet named web, and the real Pod web, all stay: names never collide.
	want := []row{
		{"Pod/prod/deployment/web", "w.yaml:22", "web2", "Deployment/web"},
		{"Pod/prod/statefulset/web", "w.yaml:7", "db", "StatefulSet/web"},
		{"Pod/prod/web", "w.yaml:12", "debug", "-"},
		{"Pod/ops/cronjob/backup", "w.yaml:17", "default", "CronJob/backup"},
		{"Pod/kube-system/daemonset/agent", "w.yaml:27", "default", "DaemonSet/agent"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[graph.Kind]int{graph.KindPod: 5}, stats.Objects); diff != "" {
		t.Errorf("Stats.Objects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"apps/v1/ReplicaSet": 1}, stats.Skipped); diff != "" {
		t.Errorf("Stats.Skipped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Pod/prod/deployment/web at w.yaml:22 replaces w.yaml:1"}, stats.Duplicates); diff != "" {
		t.Errorf("Stats.Duplicates (-want +got):\n%s", diff)
	}

	// The template pods answer as pods do: the snapshot finds the ServiceAccount's pods among them.
	snap := graph.NewSnapshot(objs)
	if got := snap.PodsOf("prod", "db"); len(got) != 1 || got[0].Name != "statefulset/web" {
		t.Errorf("PodsOf(prod, db)=%v, want the StatefulSet's template pod", got)
	}
}

// TestLoadRealWorldWorkloads loads every real-world fixture and checks that each reduced workload became a
// template pod whose origin is the workload's document and whose ServiceAccount is the one the template names.
func TestLoadRealWorldWorkloads(t *testing.T) {
	entries, err := fs.ReadDir(fixtures.FS, fixtures.RealWorldDir)
	if err != nil {
		t.Fatal(err)
	}
	total := map[string]int{}
	for _, e := range entries {
		if path.Ext(e.Name()) != ".yaml" {
			continue
		}
		name := path.Join(fixtures.RealWorldDir, e.Name())
		data, err := fs.ReadFile(fixtures.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		objs, _, err := LoadFS(t.Context(), fixtures.FS, []string{name}, LoadOptions{DefaultNamespace: fixtures.InstallNamespace(e.Name())})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range objs.Pods {
			if p.Owner == nil || p.Name != strings.ToLower(p.Owner.Kind)+"/"+p.Owner.Name || p.Namespace == "" {
				t.Errorf("%s: pod %s/%s owner %+v, want a template pod named after its workload", e.Name(), p.Namespace, p.Name, p.Owner)
				continue
			}
			total[p.Owner.Kind]++
			file, line, ok := strings.Cut(p.Origin, ":")
			if !ok || file != name {
				t.Errorf("%s: Origin=%q", p.Name, p.Origin)
				continue
			}
			// The workload's document runs from the origin line to the next separator.
			n, err := strconv.Atoi(line)
			if err != nil {
				t.Fatal(err)
			}
			var body []string
			for i := n - 1; i < len(lines) && !strings.HasPrefix(lines[i], "---"); i++ {
				body = append(body, lines[i])
			}
			doc := strings.Join(body, "\n")
			want := "serviceAccountName: " + p.ServiceAccount
			if p.ServiceAccount == "default" {
				want = "spec:" // none named
			}
			if !strings.HasPrefix(doc, "apiVersion: ") || !strings.Contains(doc, "\nkind: "+p.Owner.Kind+"\n") ||
				!strings.Contains(doc, "  name: "+p.Owner.Name+"\n") || !strings.Contains(doc, want) {
				t.Errorf("%s: the document at %s is not the %s %s running as %s:\n%s", e.Name(), p.Origin, p.Owner.Kind, p.Owner.Name, p.ServiceAccount, doc)
			}
		}
	}
	// The totals of internal/fixtures/data/real-world/README.md.
	if diff := cmp.Diff(map[string]int{"Deployment": 33, "DaemonSet": 2, "StatefulSet": 1}, total); diff != "" {
		t.Errorf("template pods per workload kind (-want +got):\n%s", diff)
	}
}
