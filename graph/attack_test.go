package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// attackObjects assembles objects for attack tests: roles and bindings by kind, other objects as given.
func attackObjects(items ...any) *Objects {
	o := &Objects{}
	for _, it := range items {
		switch v := it.(type) {
		case Role:
			o.Add(&v)
		case Binding:
			o.Add(&v)
		case Object:
			o.Add(v)
		default:
			panic(fmt.Sprintf("attackObjects: %T", it))
		}
	}
	return o
}

func saObj(ns, name string) *ServiceAccount {
	return &ServiceAccount{Meta: Meta{Namespace: ns, Name: name}}
}

func podObj(ns, name, sa, node string) *Pod {
	return &Pod{Meta: Meta{Namespace: ns, Name: name}, ServiceAccount: sa, NodeName: node}
}

func tokenSecret(ns, name, sa string) *Secret {
	return &Secret{Meta: Meta{Namespace: ns, Name: name}, Type: secretTypeTokenOfSA, ServiceAccount: sa}
}

func nodeObj(name string, kv ...string) *Node {
	n := &Node{Meta: Meta{Name: name, Labels: map[string]string{}}}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func boolp(b bool) *bool { return &b }

func mustAttack(t *testing.T, o *Objects) *AttackGraph {
	t.Helper()
	g, err := NewAttackGraph(context.Background(), NewSnapshot(o))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// hopSet renders every edge of g as "From -[KIND@scope]-> To".
func hopSet(t *testing.T, g *AttackGraph) []string {
	t.Helper()
	hs, err := g.Edges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

func findHop(t *testing.T, g *AttackGraph, text string) AttackHop {
	t.Helper()
	hs, err := g.Edges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.String() == text {
			return h
		}
	}
	t.Fatalf("no edge %s", text)
	return AttackHop{}
}

// evidenceText renders evidence as "binding#rule" ("binding#-" for the binding of E-ESCALATE, "role#rule" when
// there is no binding).
func evidenceText(ev []GrantPath) []string {
	var out []string
	for _, p := range ev {
		rule := fmt.Sprint(p.RuleIndex)
		if p.Rule == nil {
			rule = "-"
		}
		if p.Binding == nil {
			out = append(out, p.Role.String()+"#"+rule)
			continue
		}
		out = append(out, p.Binding.String()+"#"+rule)
	}
	return out
}

func TestAttackEdges(t *testing.T) {
	clusterAdminRole := role("", "cluster-admin", rule("*", "*", "*"))
	withAdmin := func(items ...any) []any { return append([]any{clusterAdminRole}, items...) }
	tests := []struct {
		name  string
		objs  []any
		want  []string
		not   []string
		notes map[string]string // edge → note
	}{
		{
			name: "create pods reaches the ServiceAccounts of the namespace",
			objs: []any{saObj("a", "builder"), role("a", "r", rule("create", "", "pods")), binding("a", "rb", "Role/r", "User:alice")},
			want: []string{
				"User/alice -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"ServiceAccounts/a/* -[INCLUDES]-> ServiceAccount/a/builder",
				"ServiceAccounts/*/* -[INCLUDES]-> ServiceAccounts/a/*",
			},
		},
		{
			name: "listing pods is no edge",
			objs: []any{saObj("a", "builder"), role("a", "r", rule("get,list,watch", "", "pods")), binding("a", "rb", "Role/r", "User:alice")},
			not:  []string{"User/alice -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*"},
		},
		{
			name: "workload controllers of the right groups count as pod create",
			objs: []any{
				role("a", "deploy", rule("create", "apps", "deployments")), binding("a", "rb1", "Role/deploy", "User:dev"),
				role("a", "cron", rule("create", "batch", "cronjobs")), binding("a", "rb2", "Role/cron", "User:ci"),
				role("a", "old", rule("create", "extensions", "deployments")), binding("a", "rb3", "Role/old", "User:old"),
				role("a", "roll", rule("patch", "apps", "statefulsets")), binding("a", "rb4", "Role/roll", "User:ops"),
			},
			want: []string{
				"User/dev -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"User/ci -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"User/ops -[E-UPDATE_WORKLOAD_AS_SA@a]-> ServiceAccounts/a/*",
			},
			not: []string{"User/old -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*"},
		},
		{
			name: "a RoleBinding to a ClusterRole acts only in its namespace",
			objs: []any{role("", "pod-maker", rule("create", "", "pods")), binding("a", "rb", "ClusterRole/pod-maker", "User:alice"),
				binding("", "crb", "ClusterRole/pod-maker", "User:bob")},
			want: []string{
				"User/alice -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"User/bob -[E-CREATE_POD_AS_SA]-> ServiceAccounts/*/*",
			},
			not: []string{"User/alice -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/*/*", "User/alice -[E-CREATE_POD_AS_SA]-> ServiceAccounts/*/*"},
		},
		{
			name: "privileged pods need a namespace without Pod Security enforcement",
			objs: []any{
				ns("open"), ns("priv", labelPSAEnforce, "privileged"), ns("locked", labelPSAEnforce, "baseline"),
				role("", "pod-maker", rule("create", "", "pods")),
				binding("open", "rb", "ClusterRole/pod-maker", "User:open"),
				binding("priv", "rb", "ClusterRole/pod-maker", "User:priv"),
				binding("locked", "rb", "ClusterRole/pod-maker", "User:locked"),
				binding("", "crb", "ClusterRole/pod-maker", "User:wide"),
			},
			want: []string{
				"User/open -[E-PRIV_POD_TO_NODE@open]-> Nodes/*",
				"User/priv -[E-PRIV_POD_TO_NODE@priv]-> Nodes/*",
				"User/wide -[E-PRIV_POD_TO_NODE]-> Nodes/*",
				"User/locked -[E-CREATE_POD_AS_SA@locked]-> ServiceAccounts/locked/*",
			},
			not: []string{"User/locked -[E-PRIV_POD_TO_NODE@locked]-> Nodes/*"},
		},
		{
			name: "exec: pods/* is not a glob, */exec is, get is noted",
			objs: []any{
				role("a", "glob", rule("create,get", "", "pods/*")), binding("a", "rb1", "Role/glob", "User:glob"),
				role("a", "star", rule("create", "", "*/exec")), binding("a", "rb2", "Role/star", "User:star"),
				role("a", "get", rule("get", "", "pods/exec")), binding("a", "rb3", "Role/get", "User:getter"),
				role("a", "both", rule("get", "", "pods/exec"), rule("create", "", "pods/exec")), binding("a", "rb4", "Role/both", "User:both"),
				podObj("a", "web-0", "default", ""),
			},
			want: []string{
				"User/star -[E-EXEC@a]-> Pods/a/*",
				"User/getter -[E-EXEC@a]-> Pods/a/*",
				"User/both -[E-EXEC@a]-> Pods/a/*",
				"Pods/a/* -[INCLUDES]-> Pod/a/web-0",
				"Pod/a/web-0 -[RUNS_AS]-> ServiceAccount/a/default",
			},
			not: []string{"User/glob -[E-EXEC@a]-> Pods/a/*", "User/glob -[E-ATTACH@a]-> Pods/a/*"},
			notes: map[string]string{
				"User/getter -[E-EXEC@a]-> Pods/a/*": noteGetExec,
				"User/both -[E-EXEC@a]-> Pods/a/*":   "",
				"User/star -[E-EXEC@a]-> Pods/a/*":   "",
			},
		},
		{
			name: "exec narrowed by resourceNames reaches only the named pods that exist",
			objs: []any{
				role("a", "r", rule("create", "", "pods/exec", "web-0", "gone")), binding("a", "rb", "Role/r", "User:alice"),
				podObj("a", "web-0", "web", ""), podObj("a", "web-1", "web", ""),
			},
			want: []string{"User/alice -[E-EXEC@a]-> Pod/a/web-0"},
			not:  []string{"User/alice -[E-EXEC@a]-> Pods/a/*", "User/alice -[E-EXEC@a]-> Pod/a/web-1", "User/alice -[E-EXEC@a]-> Pod/a/gone"},
		},
		{
			name: "attach, ephemeral containers and pod patch reach the pods",
			objs: []any{
				role("a", "r", rule("create", "", "pods/attach"), rule("patch", "", "pods/ephemeralcontainers"), rule("update", "", "pods")),
				binding("a", "rb", "Role/r", "User:alice"),
				role("a", "status", rule("patch", "", "pods/status")), binding("a", "rb2", "Role/status", "User:bob"),
			},
			want: []string{
				"User/alice -[E-ATTACH@a]-> Pods/a/*",
				"User/alice -[E-DEBUG@a]-> Pods/a/*",
				"User/alice -[E-PATCH_POD@a]-> Pods/a/*",
			},
			not: []string{"User/bob -[E-PATCH_POD@a]-> Pods/a/*", "User/bob -[E-DEBUG@a]-> Pods/a/*"},
		},
		{
			name: "token secrets: without secret metadata only list and watch reach, potentially",
			objs: []any{
				saObj("a", "robot"),
				role("a", "lister", rule("list", "", "secrets")), binding("a", "rb1", "Role/lister", "User:lister"),
				role("a", "getter", rule("get", "", "secrets")), binding("a", "rb2", "Role/getter", "User:getter"),
			},
			want: []string{
				"User/lister -[E-READ_TOKEN_SECRET@a]-> Secrets/a/*",
				"Secrets/a/* -[TOKEN_FOR]-> ServiceAccounts/a/*",
			},
			not: []string{"User/getter -[E-READ_TOKEN_SECRET@a]-> Secrets/a/*"},
		},
		{
			name: "token secrets: with secret metadata get reaches the ServiceAccounts that have token Secrets",
			objs: []any{
				saObj("a", "robot"), saObj("a", "plain"), tokenSecret("a", "robot-token", "robot"),
				&Secret{Meta: Meta{Namespace: "a", Name: "tls"}, Type: "kubernetes.io/tls"},
				role("a", "getter", rule("get", "", "secrets")), binding("a", "rb1", "Role/getter", "User:getter"),
				role("a", "one", rule("get", "", "secrets", "robot-token")), binding("a", "rb2", "Role/one", "User:one"),
				role("a", "tls", rule("get", "", "secrets", "tls")), binding("a", "rb3", "Role/tls", "User:tls"),
			},
			want: []string{
				"User/getter -[E-READ_TOKEN_SECRET@a]-> Secrets/a/*",
				"Secrets/a/* -[TOKEN_FOR]-> ServiceAccount/a/robot",
				"User/one -[E-READ_TOKEN_SECRET@a]-> ServiceAccount/a/robot",
			},
			not: []string{
				"Secrets/a/* -[TOKEN_FOR]-> ServiceAccount/a/plain", "Secrets/a/* -[TOKEN_FOR]-> ServiceAccounts/a/*",
				"User/one -[E-READ_TOKEN_SECRET@a]-> Secrets/a/*", "User/tls -[E-READ_TOKEN_SECRET@a]-> ServiceAccount/a/robot",
			},
		},
		{
			name: "minting a token Secret needs a read path in the same namespace",
			objs: []any{
				role("", "secret-writer", rule("create", "", "secrets")),
				role("", "secret-lister", rule("list", "", "secrets")),
				role("", "pod-maker", rule("create", "", "pods")),
				binding("a", "w1", "ClusterRole/secret-writer", "User:alone"),
				binding("a", "w2", "ClusterRole/secret-writer", "User:lister"), binding("a", "l2", "ClusterRole/secret-lister", "User:lister"),
				binding("a", "w3", "ClusterRole/secret-writer", "User:podder"), binding("a", "p3", "ClusterRole/pod-maker", "User:podder"),
				binding("a", "w4", "ClusterRole/secret-writer", "User:split"), binding("b", "l4", "ClusterRole/secret-lister", "User:split"),
			},
			want: []string{
				"User/lister -[E-MINT_TOKEN_SECRET@a]-> ServiceAccounts/a/*",
				"User/podder -[E-MINT_TOKEN_SECRET@a]-> ServiceAccounts/a/*",
			},
			not: []string{
				"User/alone -[E-MINT_TOKEN_SECRET@a]-> ServiceAccounts/a/*",
				"User/split -[E-MINT_TOKEN_SECRET@a]-> ServiceAccounts/a/*", "User/split -[E-MINT_TOKEN_SECRET@b]-> ServiceAccounts/b/*",
			},
		},
		{
			name: "a token request narrowed by resourceNames reaches only the named ServiceAccount",
			objs: []any{
				saObj("a", "robot"), saObj("a", "other"),
				role("a", "r", rule("create", "", "serviceaccounts/token", "robot")), binding("a", "rb", "Role/r", "User:alice"),
				role("a", "all", rule("create", "", "serviceaccounts/token")), binding("a", "rb2", "Role/all", "User:bob"),
			},
			want: []string{
				"User/alice -[E-TOKEN_REQUEST@a]-> ServiceAccount/a/robot",
				"User/bob -[E-TOKEN_REQUEST@a]-> ServiceAccounts/a/*",
			},
			not: []string{"User/alice -[E-TOKEN_REQUEST@a]-> ServiceAccount/a/other", "User/alice -[E-TOKEN_REQUEST@a]-> ServiceAccounts/a/*"},
		},
		{
			name: "impersonation: users and groups only through ClusterRoleBindings, groups need a user too",
			objs: []any{
				role("", "imp-users", rule("impersonate", "", "users")),
				role("", "imp-groups", rule("impersonate", "", "groups")),
				role("", "imp-ops", rule("impersonate", "", "groups", "ops")),
				role("", "imp-sa", rule("impersonate", "", "serviceaccounts")),
				binding("", "c1", "ClusterRole/imp-users", "User:u"),
				binding("a", "r1", "ClusterRole/imp-users", "User:ns-u"),
				binding("", "c2", "ClusterRole/imp-groups", "User:groups-only"),
				binding("", "c3", "ClusterRole/imp-groups", "User:full"), binding("", "c4", "ClusterRole/imp-users", "User:full"),
				binding("", "c5", "ClusterRole/imp-ops", "User:ops-imp"), binding("a", "r5", "ClusterRole/imp-sa", "User:ops-imp"),
				binding("a", "r6", "ClusterRole/imp-groups", "User:ns-groups"), binding("a", "r7", "ClusterRole/imp-sa", "User:ns-groups"),
			},
			want: []string{
				"User/u -[E-IMPERSONATE]-> Users/*",
				"User/full -[E-IMPERSONATE]-> Group/system:masters",
				"User/ops-imp -[E-IMPERSONATE]-> Group/ops",
				"User/ops-imp -[E-IMPERSONATE@a]-> ServiceAccounts/a/*",
				"Users/* -[INCLUDES]-> User/u",
				"Group/system:masters -[E-MASTERS]-> ClusterAdmin/cluster-admin",
			},
			not: []string{
				"User/ns-u -[E-IMPERSONATE]-> Users/*", "User/ns-u -[E-IMPERSONATE@a]-> Users/*",
				"User/groups-only -[E-IMPERSONATE]-> Group/system:masters",
				"User/ops-imp -[E-IMPERSONATE]-> Group/system:masters",
				"User/ns-groups -[E-IMPERSONATE]-> Group/system:masters",
			},
		},
		{
			name: "bind: create bindings plus bind on the role, either alone is nothing",
			objs: withAdmin(
				role("", "edit", rule("create", "", "pods")),
				role("", "binder", rule("bind", "rbac.authorization.k8s.io", "clusterroles")),
				role("", "crb-writer", rule("create", "rbac.authorization.k8s.io", "clusterrolebindings")),
				role("", "rb-writer", rule("create", "rbac.authorization.k8s.io", "rolebindings")),
				role("", "bind-edit", rule("bind", "rbac.authorization.k8s.io", "clusterroles", "edit")),
				binding("", "c1", "ClusterRole/binder", "User:both"), binding("", "c2", "ClusterRole/crb-writer", "User:both"),
				binding("", "c3", "ClusterRole/binder", "User:bind-only"),
				binding("", "c4", "ClusterRole/crb-writer", "User:create-only"),
				binding("a", "r1", "ClusterRole/rb-writer", "User:ns"), binding("a", "r2", "ClusterRole/bind-edit", "User:ns"),
				binding("", "c5", "ClusterRole/binder", "Group:binders"), binding("a", "r3", "ClusterRole/rb-writer", "User:carol"),
				&User{Meta: Meta{Name: "carol"}, Groups: []string{"binders"}},
			),
			want: []string{
				"User/both -[E-BIND]-> ClusterAdmin/cluster-admin",
				"User/ns -[E-BIND@a]-> BoundClusterRole/a/edit",
				"BoundClusterRole/a/edit -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"User/carol -[E-BIND@a]-> NamespaceAdmin/a/*",
				"User/carol -[MEMBER_OF]-> Group/binders",
			},
			not: []string{
				"User/bind-only -[E-BIND]-> ClusterAdmin/cluster-admin",
				"User/create-only -[E-BIND]-> ClusterAdmin/cluster-admin",
				"Group/binders -[E-BIND@a]-> NamespaceAdmin/a/*",
			},
		},
		{
			name: "bind on every Role reaches one node holding every Role of the namespace",
			objs: []any{
				saObj("a", "x"), podObj("a", "p", "x", ""),
				role("a", "pods", rule("create", "", "pods")), role("a", "execs", rule("create", "", "pods/exec")),
				role("b", "secrets", rule("list", "", "secrets")),
				role("", "binder", rule("bind", "rbac.authorization.k8s.io", "roles"), rule("create", "rbac.authorization.k8s.io", "rolebindings")),
				binding("a", "rb", "ClusterRole/binder", "User:ns"),
				binding("", "crb", "ClusterRole/binder", "User:wide"),
			},
			want: []string{
				"User/ns -[E-BIND@a]-> BoundRole/a/*",
				"BoundRole/a/* -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
				"BoundRole/a/* -[E-EXEC@a]-> Pods/a/*",
				"User/wide -[E-BIND@*]-> BoundRole/*/*",
				"BoundRole/*/* -[INCLUDES]-> BoundRole/a/*",
				"BoundRole/*/* -[INCLUDES]-> BoundRole/b/*",
				"BoundRole/b/* -[E-READ_TOKEN_SECRET@b]-> Secrets/b/*",
			},
			not: []string{"User/ns -[E-BIND@a]-> BoundRole/a/pods", "User/ns -[E-BIND@b]-> BoundRole/b/*"},
		},
		{
			name: "a bindable admin-equivalent role dominates the others of its scope",
			objs: withAdmin(
				role("a", "ns-admin", rule("*", "*", "*")), role("a", "pods", rule("create", "", "pods")),
				role("", "binder", rule("bind", "rbac.authorization.k8s.io", "roles", "ns-admin", "pods"), rule("create", "rbac.authorization.k8s.io", "rolebindings")),
				binding("a", "rb", "ClusterRole/binder", "User:alice"),
				role("", "cr-binder", rule("bind", "rbac.authorization.k8s.io", "clusterroles"), rule("create", "rbac.authorization.k8s.io", "rolebindings")),
				binding("b", "rb", "ClusterRole/cr-binder", "User:bob"),
			),
			want: []string{"User/alice -[E-BIND@a]-> NamespaceAdmin/a/*", "User/bob -[E-BIND@b]-> NamespaceAdmin/b/*"},
			not: []string{
				"User/alice -[E-BIND@a]-> BoundRole/a/pods", "User/bob -[E-BIND]-> ClusterAdmin/cluster-admin",
				"User/bob -[E-BIND@b]-> BoundClusterRole/b/binder",
			},
		},
		{
			name: "escalate needs update or patch on a role bound to the subject",
			objs: withAdmin(
				role("", "agg", rule("escalate,get,update", "rbac.authorization.k8s.io", "clusterroles")),
				role("", "esc-only", rule("escalate", "rbac.authorization.k8s.io", "clusterroles")),
				role("", "esc-other", rule("escalate,update", "rbac.authorization.k8s.io", "clusterroles", "other")),
				binding("", "c1", "ClusterRole/agg", "ServiceAccount:kube-system/aggregator"),
				binding("", "c2", "ClusterRole/esc-only", "User:esc"),
				binding("", "c3", "ClusterRole/esc-other", "User:other-esc"),
				role("a", "self", rule("escalate,patch", "rbac.authorization.k8s.io", "roles")),
				binding("a", "r1", "Role/self", "User:ns-esc"),
			),
			want: []string{
				"ServiceAccount/kube-system/aggregator -[E-ESCALATE]-> ClusterAdmin/cluster-admin",
				"User/ns-esc -[E-ESCALATE@a]-> NamespaceAdmin/a/*",
				"NamespaceAdmin/a/* -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
			},
			not: []string{
				"User/esc -[E-ESCALATE]-> ClusterAdmin/cluster-admin",
				"User/other-esc -[E-ESCALATE]-> ClusterAdmin/cluster-admin",
			},
		},
		{
			name: "CSR forging needs create, approval and approve on the kube-apiserver-client signer",
			objs: []any{
				role("", "csr", rule("create", "certificates.k8s.io", "certificatesigningrequests"),
					rule("update", "certificates.k8s.io", "certificatesigningrequests/approval")),
				role("", "signer", rule("approve", "certificates.k8s.io", "signers", signerAPIServerClient)),
				role("", "kubelet-signer", rule("approve", "certificates.k8s.io", "signers", "kubernetes.io/kubelet-serving")),
				role("", "domain-signer", rule("approve", "certificates.k8s.io", "signers", "kubernetes.io/*")),
				binding("", "c1", "ClusterRole/csr", "User:forger"), binding("", "c2", "ClusterRole/signer", "User:forger"),
				binding("", "c3", "ClusterRole/csr", "User:kubelet"), binding("", "c4", "ClusterRole/kubelet-signer", "User:kubelet"),
				binding("", "c5", "ClusterRole/csr", "User:domain"), binding("", "c6", "ClusterRole/domain-signer", "User:domain"),
				binding("", "c7", "ClusterRole/signer", "User:no-csr"),
				binding("", "admins", "ClusterRole/csr", "Group:kubeadm:cluster-admins"),
			},
			want: []string{
				"User/forger -[E-CSR_FORGE]-> ForgedCertificate/kubernetes.io/kube-apiserver-client",
				"User/domain -[E-CSR_FORGE]-> ForgedCertificate/kubernetes.io/kube-apiserver-client",
				"ForgedCertificate/kubernetes.io/kube-apiserver-client -[INCLUDES]-> Group/kubeadm:cluster-admins",
			},
			not: []string{
				"User/kubelet -[E-CSR_FORGE]-> ForgedCertificate/kubernetes.io/kube-apiserver-client",
				"User/no-csr -[E-CSR_FORGE]-> ForgedCertificate/kubernetes.io/kube-apiserver-client",
				"ForgedCertificate/kubernetes.io/kube-apiserver-client -[INCLUDES]-> Group/system:masters",
			},
		},
		{
			name: "nodes/proxy, webhooks and admin rules only through ClusterRoleBindings",
			objs: []any{
				role("", "proxy", rule("get", "", "nodes/proxy")),
				role("", "hook", rule("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations")),
				role("", "vhook", rule("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations")),
				role("", "star", rule("*", "*", "*")),
				role("", "star-core", rule("*", "", "*")),
				role("", "star-named", rule("*", "*", "*", "x")),
				binding("", "c1", "ClusterRole/proxy", "User:proxy"), binding("a", "r1", "ClusterRole/proxy", "User:ns-proxy"),
				binding("", "c2", "ClusterRole/hook", "User:hook"), binding("", "c3", "ClusterRole/vhook", "User:vhook"),
				binding("", "c4", "ClusterRole/star", "User:star"), binding("a", "r4", "ClusterRole/star", "User:ns-star"),
				binding("", "c5", "ClusterRole/star-core", "User:core"), binding("", "c6", "ClusterRole/star-named", "User:named"),
			},
			want: []string{
				"User/proxy -[E-NODE_PROXY]-> Nodes/*",
				"User/hook -[E-WEBHOOK]-> ClusterAdmin/cluster-admin",
				"User/star -[ADMIN_EQUIVALENT]-> ClusterAdmin/cluster-admin",
				"User/core -[ADMIN_EQUIVALENT]-> ClusterAdmin/cluster-admin",
				"User/ns-star -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
			},
			not: []string{
				"User/ns-proxy -[E-NODE_PROXY@a]-> Nodes/*", "User/ns-proxy -[E-NODE_PROXY]-> Nodes/*",
				"User/vhook -[E-WEBHOOK]-> ClusterAdmin/cluster-admin",
				"User/ns-star -[ADMIN_EQUIVALENT@a]-> ClusterAdmin/cluster-admin", "User/ns-star -[ADMIN_EQUIVALENT]-> ClusterAdmin/cluster-admin",
				"User/named -[ADMIN_EQUIVALENT]-> ClusterAdmin/cluster-admin",
			},
		},
		{
			name: "identities, tokens and nodes",
			objs: []any{
				saObj("a", "web"), &ServiceAccount{Meta: Meta{Namespace: "a", Name: "quiet"}, AutomountToken: boolp(false)},
				podObj("a", "web-0", "web", "n1"),
				&Pod{Meta: Meta{Namespace: "a", Name: "off"}, ServiceAccount: "web", AutomountToken: boolp(false)},
				&Pod{Meta: Meta{Namespace: "a", Name: "quiet-0"}, ServiceAccount: "quiet"},
				&Pod{Meta: Meta{Namespace: "a", Name: "loud-0"}, ServiceAccount: "quiet", AutomountToken: boolp(true)},
				nodeObj("cp", labelControlPlane, ""), nodeObj("old-master", labelMaster, ""), nodeObj("worker"),
				&User{Meta: Meta{Name: "carol"}, Groups: []string{"devs", "system:masters"}},
				binding("kube-public", "anon", "Role/reader", "User:system:anonymous"),
			},
			want: []string{
				"ServiceAccount/a/web -[MEMBER_OF]-> Group/system:serviceaccounts",
				"ServiceAccount/a/web -[MEMBER_OF]-> Group/system:serviceaccounts:a",
				"ServiceAccount/a/web -[MEMBER_OF]-> Group/system:authenticated",
				"User/carol -[MEMBER_OF]-> Group/devs",
				"User/carol -[MEMBER_OF]-> Group/system:masters",
				"User/carol -[MEMBER_OF]-> Group/system:authenticated",
				"User/system:anonymous -[MEMBER_OF]-> Group/system:unauthenticated",
				"Pod/a/web-0 -[RUNS_AS]-> ServiceAccount/a/web",
				"Pod/a/loud-0 -[RUNS_AS]-> ServiceAccount/a/quiet",
				"Node/n1 -[HOSTS]-> Pod/a/web-0",
				"Nodes/* -[INCLUDES]-> Node/n1",
				"Nodes/* -[INCLUDES]-> Node/worker",
				"Node/cp -[E-CONTROL_PLANE]-> ClusterAdmin/cluster-admin",
				"Node/old-master -[E-CONTROL_PLANE]-> ClusterAdmin/cluster-admin",
			},
			not: []string{
				"Pod/a/off -[RUNS_AS]-> ServiceAccount/a/web",
				"Pod/a/quiet-0 -[RUNS_AS]-> ServiceAccount/a/quiet",
				"Node/worker -[E-CONTROL_PLANE]-> ClusterAdmin/cluster-admin",
				"User/system:anonymous -[MEMBER_OF]-> Group/system:authenticated",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustAttack(t, attackObjects(tc.objs...))
			got := hopSet(t, g)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing edge %s", w)
				}
			}
			for _, n := range tc.not {
				if slices.Contains(got, n) {
					t.Errorf("unexpected edge %s", n)
				}
			}
			for e, note := range tc.notes {
				if got, want := findHop(t, g, e).Note, note; got != want {
					t.Errorf("%s: Note=%q, want %q", e, got, want)
				}
			}
			if t.Failed() {
				t.Logf("edges:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestAttackEvidence checks that escalation edges name the grants that make them.
func TestAttackEvidence(t *testing.T) {
	g := mustAttack(t, attackObjects(
		role("", "cluster-admin", rule("*", "*", "*")),
		role("", "binder", rule("bind", "rbac.authorization.k8s.io", "clusterroles")),
		role("", "crb-writer", rule("get", "", "pods"), rule("create", "rbac.authorization.k8s.io", "clusterrolebindings")),
		binding("", "c1", "ClusterRole/binder", "Group:binders"), binding("", "c2", "ClusterRole/crb-writer", "User:carol"),
		&User{Meta: Meta{Name: "carol"}, Groups: []string{"binders"}},
		role("", "agg", rule("escalate", "rbac.authorization.k8s.io", "clusterroles"), rule("update", "rbac.authorization.k8s.io", "clusterroles")),
		binding("", "c3", "ClusterRole/agg", "User:esc"),
		role("a", "exec", rule("get", "", "pods/exec")), binding("a", "r1", "Role/exec", "User:x"),
	))
	for _, tc := range []struct {
		edge      string
		evidence  []string
		technique string
	}{
		{"User/carol -[E-BIND]-> ClusterAdmin/cluster-admin", []string{"ClusterRoleBinding/c2#1", "ClusterRoleBinding/c1#0"}, "T1098.006"},
		{"User/esc -[E-ESCALATE]-> ClusterAdmin/cluster-admin", []string{"ClusterRoleBinding/c3#0", "ClusterRoleBinding/c3#1", "ClusterRoleBinding/c3#-"}, "T1098.006"},
		{"User/x -[E-EXEC@a]-> Pods/a/*", []string{"RoleBinding/a/r1#0"}, "T1609"},
		{"Group/system:masters -[E-MASTERS]-> ClusterAdmin/cluster-admin", nil, "T1078"},
		{"User/carol -[MEMBER_OF]-> Group/binders", nil, ""},
	} {
		h := findHop(t, g, tc.edge)
		if diff := cmp.Diff(tc.evidence, evidenceText(h.Evidence)); diff != "" {
			t.Errorf("%s evidence (-want +got):\n%s", tc.edge, diff)
		}
		if h.Technique != tc.technique {
			t.Errorf("%s Technique=%q, want %q", tc.edge, h.Technique, tc.technique)
		}
	}
	// The subject of each grant path is the binding's subject that names the principal.
	h := findHop(t, g, "User/carol -[E-BIND]-> ClusterAdmin/cluster-admin")
	if got, want := []string{h.Evidence[0].Subject.Name, h.Evidence[1].Subject.Name}, []string{"carol", "binders"}; !slices.Equal(got, want) {
		t.Errorf("evidence subjects %v, want %v", got, want)
	}
}

// plantedChain is a cluster where alice reaches cluster-admin three ways, of 4, 4 and 5 hops:
//
//	alice ─create pods@a─▶ ServiceAccounts/a ─▶ deployer ─impersonate (group+user)─▶ system:masters ─▶ cluster-admin
//	alice ─exec@a──────────▶ Pods/a ─▶ Pod/a/web-0 ─RUNS_AS─▶ deployer ─…
//	alice ─MEMBER_OF─▶ Group/devs ─token request@a─▶ deployer ─…  (via a declared group)
func plantedChain() *Objects {
	return attackObjects(
		ns("a", labelPSAEnforce, "restricted"),
		saObj("a", "deployer"), podObj("a", "web-0", "deployer", ""),
		role("", "cluster-admin", rule("*", "*", "*")),
		role("a", "pod-maker", rule("create", "", "pods")),
		binding("a", "makers", "Role/pod-maker", "User:alice"),
		role("a", "exec", rule("create", "", "pods/exec")),
		binding("a", "execs", "Role/exec", "User:alice"),
		role("", "impersonator", rule("impersonate", "", "groups"), rule("impersonate", "", "users")),
		binding("", "imp", "ClusterRole/impersonator", "ServiceAccount:a/deployer"),
		role("a", "tokens", rule("create", "", "serviceaccounts/token", "deployer")),
		binding("a", "tokens", "Role/tokens", "Group:devs"),
		&User{Meta: Meta{Name: "alice"}, Groups: []string{"devs"}},
		&User{Meta: Meta{Name: "bob"}},
	)
}

func pathText(p AttackPath) []string {
	out := make([]string, len(p.Hops))
	for i, h := range p.Hops {
		out[i] = h.String()
	}
	return out
}

func TestAttackPlantedChain(t *testing.T) {
	ctx := context.Background()
	g := mustAttack(t, plantedChain())
	all, err := g.ToClusterAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var reach []string
	for ref := range all {
		reach = append(reach, ref.String())
	}
	slices.Sort(reach)
	wantReach := []string{
		"Group/devs", "Group/system:masters", "Pod/a/web-0", "ServiceAccount/a/deployer", "User/alice",
	}
	if diff := cmp.Diff(wantReach, reach); diff != "" {
		t.Fatalf("ToClusterAdmin reaches (-want +got):\n%s", diff)
	}
	// Two paths of 4 hops tie; at the first hop Group/devs sorts before ServiceAccounts/a/*.
	alice := all[ObjectRef{Kind: KindUser, Name: "alice"}]
	viaGroup := []string{
		"User/alice -[MEMBER_OF]-> Group/devs",
		"Group/devs -[E-TOKEN_REQUEST@a]-> ServiceAccount/a/deployer",
		"ServiceAccount/a/deployer -[E-IMPERSONATE]-> Group/system:masters",
		"Group/system:masters -[E-MASTERS]-> ClusterAdmin/cluster-admin",
	}
	viaPod := []string{
		"User/alice -[E-CREATE_POD_AS_SA@a]-> ServiceAccounts/a/*",
		"ServiceAccounts/a/* -[INCLUDES]-> ServiceAccount/a/deployer",
		"ServiceAccount/a/deployer -[E-IMPERSONATE]-> Group/system:masters",
		"Group/system:masters -[E-MASTERS]-> ClusterAdmin/cluster-admin",
	}
	viaExec := []string{
		"User/alice -[E-EXEC@a]-> Pods/a/*",
		"Pods/a/* -[INCLUDES]-> Pod/a/web-0",
		"Pod/a/web-0 -[RUNS_AS]-> ServiceAccount/a/deployer",
		"ServiceAccount/a/deployer -[E-IMPERSONATE]-> Group/system:masters",
		"Group/system:masters -[E-MASTERS]-> ClusterAdmin/cluster-admin",
	}
	if diff := cmp.Diff(viaGroup, pathText(alice)); diff != "" {
		t.Fatalf("alice's path (-want +got):\n%s", diff)
	}
	wantEvidence := [][]string{
		nil,
		{"RoleBinding/a/tokens#0"},
		{"ClusterRoleBinding/imp#0", "ClusterRoleBinding/imp#1"},
		nil,
	}
	for i, h := range alice.Hops {
		if diff := cmp.Diff(wantEvidence[i], evidenceText(h.Evidence)); diff != "" {
			t.Errorf("hop %d (%s) evidence (-want +got):\n%s", i, h, diff)
		}
	}
	if got, want := alice.Hops[2].Note, noteAnyGroup; got != want {
		t.Errorf("impersonation note %q, want %q", got, want)
	}
	if got, want := pathText(all[ObjectRef{Kind: KindPod, Namespace: "a", Name: "web-0"}]), viaExec[2:]; !slices.Equal(got, want) {
		t.Errorf("the pod's path %v, want %v", got, want)
	}

	paths, err := g.Paths(ctx, ObjectRef{Kind: KindUser, Name: "alice"}, ClusterAdminTarget(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, p := range paths {
		got = append(got, pathText(p))
	}
	if diff := cmp.Diff([][]string{viaGroup, viaPod, viaExec}, got); diff != "" {
		t.Fatalf("Paths(alice, cluster-admin, 3) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"RoleBinding/a/makers#0"}, evidenceText(paths[1].Hops[0].Evidence)); diff != "" {
		t.Errorf("pod create evidence (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"RoleBinding/a/execs#0"}, evidenceText(paths[2].Hops[0].Evidence)); diff != "" {
		t.Errorf("exec evidence (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		from   ObjectRef
		to     AttackTarget
		k      int
		hops   []int
		errors bool
	}{
		{"k=1 gives the shortest", ObjectRef{Kind: KindUser, Name: "alice"}, ClusterAdminTarget(), 1, []int{4}, false},
		{"a user without grants reaches nothing", ObjectRef{Kind: KindUser, Name: "bob"}, ClusterAdminTarget(), 3, nil, false},
		{"an unknown subject has no paths", ObjectRef{Kind: KindUser, Name: "nobody"}, ClusterAdminTarget(), 3, nil, false},
		{"to a subject", ObjectRef{Kind: KindUser, Name: "alice"}, SubjectTarget(ObjectRef{Kind: KindServiceAccount, Namespace: "a", Name: "deployer"}), 5, []int{2, 2, 3}, false},
		{"to the secrets of a namespace nobody reads", ObjectRef{Kind: KindUser, Name: "alice"}, SecretsTarget("a"), 3, nil, false},
		{"to any node: PSA restricts a", ObjectRef{Kind: KindUser, Name: "alice"}, NodeTarget(""), 3, nil, false},
		{"unknown target kind", ObjectRef{Kind: KindUser, Name: "alice"}, AttackTarget{Kind: "Planet"}, 3, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := g.Paths(ctx, tc.from, tc.to, tc.k)
			if (err != nil) != tc.errors {
				t.Fatalf("Paths error %v, want error: %v", err, tc.errors)
			}
			var hops []int
			for _, p := range ps {
				hops = append(hops, len(p.Hops))
			}
			if !slices.Equal(hops, tc.hops) {
				t.Fatalf("path lengths %v, want %v", hops, tc.hops)
			}
		})
	}
}

// TestAttackPathsToSecretsAndNodes checks the other target kinds on a cluster where they are reachable.
func TestAttackPathsToSecretsAndNodes(t *testing.T) {
	ctx := context.Background()
	g := mustAttack(t, attackObjects(
		saObj("b", "reader"), podObj("b", "r-0", "reader", "n1"), nodeObj("n1"),
		role("b", "list-secrets", rule("list", "", "secrets")), binding("b", "rb", "Role/list-secrets", "ServiceAccount:b/reader"),
		role("", "proxy", rule("create", "", "nodes/proxy", "n1")), binding("", "crb", "ClusterRole/proxy", "User:alice"),
	))
	for _, tc := range []struct {
		to   AttackTarget
		want []string
	}{
		{SecretsTarget("b"), []string{
			"User/alice -[E-NODE_PROXY]-> Node/n1", "Node/n1 -[HOSTS]-> Pod/b/r-0", "Pod/b/r-0 -[RUNS_AS]-> ServiceAccount/b/reader",
			"ServiceAccount/b/reader -[E-READ_TOKEN_SECRET@b]-> Secrets/b/*",
		}},
		{NodeTarget("n1"), []string{"User/alice -[E-NODE_PROXY]-> Node/n1"}},
		{NodeTarget(""), []string{"User/alice -[E-NODE_PROXY]-> Node/n1"}},
	} {
		ps, err := g.Paths(ctx, ObjectRef{Kind: KindUser, Name: "alice"}, tc.to, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 {
			t.Fatalf("Paths to %+v: %d paths, want 1", tc.to, len(ps))
		}
		if diff := cmp.Diff(tc.want, pathText(ps[0])); diff != "" {
			t.Errorf("Paths to %+v (-want +got):\n%s", tc.to, diff)
		}
	}
}

// TestAttackPathsLongChain checks that a shortest path longer than the cap on alternatives is still returned.
func TestAttackPathsLongChain(t *testing.T) {
	var items []any
	for i := range 14 {
		name := fmt.Sprint("imp-", i)
		items = append(items, role("", name, rule("impersonate", "", "users", fmt.Sprint("u", i+1))),
			binding("", name, "ClusterRole/"+name, fmt.Sprint("User:u", i)))
	}
	items = append(items, &User{Meta: Meta{Name: "u14"}, Groups: []string{GroupMasters}})
	g := mustAttack(t, attackObjects(items...))
	ps, err := g.Paths(context.Background(), ObjectRef{Kind: KindUser, Name: "u0"}, ClusterAdminTarget(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || len(ps[0].Hops) != 16 {
		t.Fatalf("Paths(u0): %d paths %v, want one of 16 hops", len(ps), ps)
	}
	all, err := g.ToClusterAdmin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pathText(ps[0]), pathText(all[ObjectRef{Kind: KindUser, Name: "u0"}])); diff != "" {
		t.Fatalf("Paths and ToClusterAdmin disagree (-Paths +ToClusterAdmin):\n%s", diff)
	}
}

// TestAttackUpdateConcurrent runs readers against a writer; with -race it checks the locking.
func TestAttackUpdateConcurrent(t *testing.T) {
	ctx := context.Background()
	snap := NewSnapshot(plantedChain())
	g, err := NewAttackGraph(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := g.ToClusterAdmin(ctx); err != nil {
					errs <- err
					return
				}
				if _, err := g.Paths(ctx, ObjectRef{Kind: KindUser, Name: "alice"}, ClusterAdminTarget(), 3); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	imp := binding("", "imp", "ClusterRole/impersonator", "ServiceAccount:a/deployer")
	for i := range 40 {
		var c Change
		if i%2 == 0 {
			c = NewChange(&imp, nil)
		} else {
			c = NewChange(nil, &imp)
		}
		snap = snap.Apply([]Change{c})
		if err := g.Update(ctx, snap, []ObjectRef{c.Ref}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := g.ToClusterAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all[ObjectRef{Kind: KindUser, Name: "alice"}]; !ok {
		t.Fatal("after re-adding the impersonation binding alice no longer reaches cluster-admin")
	}
}

// TestAttackUpdateRemovesWhatItNoLongerNeeds checks that nodes and holder nodes go with the grants that made
// them, including holder nodes that reach each other.
func TestAttackUpdateRemovesWhatItNoLongerNeeds(t *testing.T) {
	ctx := context.Background()
	bindRule := rule("bind", "rbac.authorization.k8s.io", "clusterroles", "loop-a", "loop-b")
	writeRule := rule("create", "rbac.authorization.k8s.io", "rolebindings")
	objs := attackObjects(
		// Each role lets its holder bind the other: BoundClusterRole nodes that keep each other alive.
		role("", "loop-a", bindRule, writeRule, rule("create", "", "pods")),
		role("", "loop-b", bindRule, writeRule, rule("get", "", "pods/exec")),
		binding("a", "entry", "ClusterRole/loop-a", "User:alice"),
	)
	snap := NewSnapshot(objs)
	g, err := NewAttackGraph(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	edges := hopSet(t, g)
	for _, w := range []string{"User/alice -[E-BIND@a]-> BoundClusterRole/a/loop-b", "BoundClusterRole/a/loop-b -[E-BIND@a]-> BoundClusterRole/a/loop-a"} {
		if !slices.Contains(edges, w) {
			t.Fatalf("missing %s in\n%s", w, strings.Join(edges, "\n"))
		}
	}
	entry := binding("a", "entry", "ClusterRole/loop-a", "User:alice")
	c := NewChange(&entry, nil)
	snap = snap.Apply([]Change{c})
	if err := g.Update(ctx, snap, []ObjectRef{c.Ref}); err != nil {
		t.Fatal(err)
	}
	fresh := mustAttack(t, snap.Objects())
	if diff := cmp.Diff(hopSet(t, fresh), hopSet(t, g)); diff != "" {
		t.Fatalf("edges after removing the entry binding (-rebuilt +updated):\n%s", diff)
	}
	if got := len(g.st.ids); got != len(fresh.st.ids) {
		t.Fatalf("%d nodes after the update, %d rebuilt", got, len(fresh.st.ids))
	}
	for _, kind := range []Kind{KindBoundClusterRole, KindUser} {
		for ref := range g.st.ids {
			if ref.Kind == kind {
				t.Errorf("node %s outlived the binding that made it", ref)
			}
		}
	}
}

func TestAttackContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := &Objects{}
	for i := range 600 {
		big.ClusterRoleBindings = append(big.ClusterRoleBindings, binding("", fmt.Sprint("crb-", i), "ClusterRole/x", "User:u"))
	}
	if _, err := NewAttackGraph(ctx, NewSnapshot(big)); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewAttackGraph with a cancelled context: %v, want context.Canceled", err)
	}
	snap := NewSnapshot(plantedChain())
	g := mustAttack(t, snap.Objects())
	rb := binding("a", "late", "Role/pod-maker", "User:bob")
	c := NewChange(nil, &rb)
	if err := g.Update(ctx, snap.Apply([]Change{c}), []ObjectRef{c.Ref}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := g.ToClusterAdmin(context.Background()); !errors.Is(err, ErrAttackStale) {
		t.Fatalf("ToClusterAdmin after an interrupted Update: %v, want ErrAttackStale", err)
	}
	if err := g.Update(context.Background(), snap, nil); !errors.Is(err, ErrAttackStale) {
		t.Fatalf("Update after an interrupted Update: %v, want ErrAttackStale", err)
	}
}

func TestAttackTechniques(t *testing.T) {
	for k, want := range map[AttackEdgeKind]string{
		EdgeCreatePodAsSA: "T1610", EdgeExec: "T1609", EdgeReadTokenSecret: "T1528", EdgeImpersonate: "T1078",
		EdgeBind: "T1098.006", EdgePrivPodToNode: "T1611", EdgeWebhook: "MS-TA9015", EdgeMemberOf: "", EdgeControlPlane: "",
	} {
		if got := k.Technique(); got != want {
			t.Errorf("%s.Technique()=%q, want %q", k, got, want)
		}
	}
}
