package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/queries"
)

// TestDiffClusterE2E runs `kiem diff --kubeconfig` against a real kube-apiserver with manifests laid over it: a
// new binding adds a grant and a risky finding, a binding of the same name replaces the cluster's, and nothing
// the manifests leave out is deleted.
func TestDiffClusterE2E(t *testing.T) {
	cl := kubetest.Start(t, kubetest.DefaultOptions())
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cl.RESTConfig("admin"))
	for _, ns := range []string{"prod", "ci"} {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := cs.CoreV1().ServiceAccounts("ci").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{})
		return err
	})
	for name, verb := range map[string]string{"pod-launcher": "create", "pod-reader": "get"} {
		mustCreate(t, func() error {
			_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules: []rbacv1.PolicyRule{{Verbs: []string{verb}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := cs.RbacV1().RoleBindings("prod").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "readers"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pod-reader"},
			Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "devs"}}}, metav1.CreateOptions{})
		return err
	})

	// The pull request: the deployer may create pods in prod; the readers binding moves from devs to qa.
	manifests := t.TempDir()
	doc := `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployers, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-launcher}
subjects: [{kind: ServiceAccount, name: deployer, namespace: ci}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: qa}]
`
	file := filepath.Join(manifests, "rbac.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	r := kiem(t, "", "diff", "--kubeconfig", cl.Kubeconfig("admin"), manifests, "--format", "json")
	if r.code != 1 {
		t.Fatalf("code %d, stderr %q; want 1 for the new risky finding", r.code, r.err)
	}
	// Reading the cluster logs nothing when all goes well: stderr says why the build fails, and only that.
	if lines := strings.Split(strings.TrimSpace(r.err), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "kiem diff: the change makes ") {
		t.Errorf("stderr %q, want only the reason for exit code 1", r.err)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatal(err)
	}
	var objects []string
	for _, o := range rep.Objects {
		objects = append(objects, string(o.Op)+" "+o.Ref.String()+" "+o.Location)
	}
	want := []string{"add RoleBinding/prod/deployers " + file + ":1", "update RoleBinding/prod/readers " + file + ":7"}
	if !slices.Equal(objects, want) {
		t.Fatalf("objects %q, want %q (the cluster's other objects neither changed nor deleted)", objects, want)
	}
	deployer := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "ci", Name: "deployer"}
	for _, c := range []struct {
		subject graph.ObjectRef
		gained  bool
		want    string
	}{
		{deployer, true, "create pods prod RoleBinding/prod/deployers ClusterRole/pod-launcher"},
		{graph.ObjectRef{Kind: graph.KindGroup, Name: "qa"}, true, "get pods prod RoleBinding/prod/readers ClusterRole/pod-reader"},
		{graph.ObjectRef{Kind: graph.KindGroup, Name: "devs"}, false, "get pods prod RoleBinding/prod/readers ClusterRole/pod-reader"},
	} {
		if got := grants(rep, c.subject, c.gained); !slices.Equal(got, []string{c.want}) {
			t.Errorf("%v (gained %v): %q, want %q", c.subject, c.gained, got, c.want)
		}
	}
	if rep.Summary.Subjects != 3 {
		t.Errorf("%d subjects changed, want 3: %+v", rep.Summary.Subjects, rep.Subjects)
	}
	if fd := findFinding(rep.Findings.New, "KIEM-CIS-5.1.4", &deployer, nil); fd == nil || fd.Status != queries.StatusRisky || fd.Location != file+":1" {
		t.Errorf("new findings lack the deployer's risky pod creation at %s:1: %+v", file, fd)
	}

	r = kiem(t, "", "diff", "--kubeconfig", cl.Kubeconfig("admin"), file, "--fail-on", "none")
	if r.code != 0 || !strings.Contains(r.out, "  + ServiceAccount ci/deployer gains create pods in namespace prod via RoleBinding prod/deployers → ClusterRole pod-launcher rule 0") ||
		!strings.Contains(r.out, "  - Group devs loses get pods in namespace prod via RoleBinding prod/readers → ClusterRole pod-reader rule 0") {
		t.Errorf("table: code %d\n%s\nstderr %q", r.code, r.out, r.err)
	}
}
