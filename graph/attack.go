package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// AttackEdgeKind names the kind of an edge of the attack graph: a structural fact (MEMBER_OF, RUNS_AS, HOSTS,
// INCLUDES, TOKEN_FOR) or an escalation edge of RISKS.md §4 (E-…, ADMIN_EQUIVALENT).
type AttackEdgeKind string

// Structural edges: facts that need no attack.
const (
	// EdgeMemberOf links a User or ServiceAccount to a group it is in: the groups the apiserver adds
	// (system:authenticated, the ServiceAccount groups) and the groups declared for a user (see User).
	EdgeMemberOf AttackEdgeKind = "MEMBER_OF"
	// EdgeRunsAs links a Pod to its ServiceAccount when the token is mounted.
	EdgeRunsAs AttackEdgeKind = "RUNS_AS"
	// EdgeHosts links a Node to the pods scheduled on it: a foothold on the node yields their tokens
	// (E-NODE_TO_TOKEN of RISKS.md §4).
	EdgeHosts AttackEdgeKind = "HOSTS"
	// EdgeIncludes links a set node (KindServiceAccounts, KindPods, KindSecrets, KindNodes, KindUsers,
	// KindForgedCertificate) to its members.
	EdgeIncludes AttackEdgeKind = "INCLUDES"
	// EdgeTokenFor links the secrets of a namespace (KindSecrets) to the ServiceAccounts whose token Secrets they
	// hold; Potential when secret metadata is not indexed (see AttackHop.Potential).
	EdgeTokenFor AttackEdgeKind = "TOKEN_FOR"
)

// Escalation edges: "the source can act as, or take control of, the target", derived from RBAC grants.
const (
	EdgeCreatePodAsSA      AttackEdgeKind = "E-CREATE_POD_AS_SA"
	EdgeUpdateWorkloadAsSA AttackEdgeKind = "E-UPDATE_WORKLOAD_AS_SA"
	EdgeExec               AttackEdgeKind = "E-EXEC"
	EdgeAttach             AttackEdgeKind = "E-ATTACH"
	EdgeDebug              AttackEdgeKind = "E-DEBUG"
	EdgePatchPod           AttackEdgeKind = "E-PATCH_POD"
	EdgeReadTokenSecret    AttackEdgeKind = "E-READ_TOKEN_SECRET"
	EdgeMintTokenSecret    AttackEdgeKind = "E-MINT_TOKEN_SECRET"
	EdgeTokenRequest       AttackEdgeKind = "E-TOKEN_REQUEST"
	EdgeImpersonate        AttackEdgeKind = "E-IMPERSONATE"
	EdgeBind               AttackEdgeKind = "E-BIND"
	EdgeEscalate           AttackEdgeKind = "E-ESCALATE"
	EdgeCSRForge           AttackEdgeKind = "E-CSR_FORGE"
	EdgeNodeProxy          AttackEdgeKind = "E-NODE_PROXY"
	EdgePrivPodToNode      AttackEdgeKind = "E-PRIV_POD_TO_NODE"
	EdgeWebhook            AttackEdgeKind = "E-WEBHOOK"
	EdgeMasters            AttackEdgeKind = "E-MASTERS"
	EdgeControlPlane       AttackEdgeKind = "E-CONTROL_PLANE"
	EdgeAdminEquivalent    AttackEdgeKind = "ADMIN_EQUIVALENT"
)

// Technique returns the MITRE ATT&CK technique RISKS.md §4 gives the edge kind ("MS-TA9015", from Microsoft's
// threat matrix, for E-WEBHOOK); "" for structural edges and for E-CONTROL_PLANE, for which RISKS.md names none.
func (k AttackEdgeKind) Technique() string {
	switch k {
	case EdgeCreatePodAsSA, EdgeUpdateWorkloadAsSA:
		return "T1610"
	case EdgeExec, EdgeAttach, EdgeDebug, EdgePatchPod, EdgeNodeProxy:
		return "T1609"
	case EdgeReadTokenSecret, EdgeMintTokenSecret, EdgeTokenRequest:
		return "T1528"
	case EdgeImpersonate, EdgeCSRForge, EdgeMasters, EdgeAdminEquivalent:
		return "T1078"
	case EdgeBind, EdgeEscalate:
		return "T1098.006"
	case EdgePrivPodToNode:
		return "T1611"
	case EdgeWebhook:
		return "MS-TA9015"
	}
	return ""
}

// Node kinds that exist only in the attack graph. Set nodes keep the graph linear: "can create pods in N" is one
// edge to ServiceAccounts/N, which has one edge to each ServiceAccount of N, instead of one edge per pair.
const (
	// KindClusterAdmin is the terminal node cluster-admin (Name "cluster-admin"): whoever reaches it controls the
	// cluster.
	KindClusterAdmin Kind = "ClusterAdmin"
	// KindServiceAccounts is the set of ServiceAccounts of Namespace (AllNamespaces: of every namespace).
	KindServiceAccounts Kind = "ServiceAccounts"
	// KindPods is the set of pods of Namespace (AllNamespaces: of every namespace).
	KindPods Kind = "Pods"
	// KindSecrets is "every Secret of Namespace readable" (AllNamespaces: of every namespace). It reaches the
	// ServiceAccounts whose token Secrets it holds.
	KindSecrets Kind = "Secrets"
	// KindNodes is the set of every node: Node objects and the nodes pods are scheduled on.
	KindNodes Kind = "Nodes"
	// KindUsers is the set of every User the graph knows, the targets of unrestricted user impersonation.
	KindUsers Kind = "Users"
	// KindForgedCertificate (Name "kubernetes.io/kube-apiserver-client") is a client certificate its holder
	// had signed for any user and groups but system:masters: it reaches every User, ServiceAccount and Group
	// except system:masters.
	KindForgedCertificate Kind = "ForgedCertificate"
	// KindNamespaceAdmin is "holds every permission in Namespace" (AllNamespaces: in every namespace, as
	// RoleBindings give it): its edges are those of such a subject.
	KindNamespaceAdmin Kind = "NamespaceAdmin"
	// KindBoundRole is "Role Namespace/Name bound to the attacker by a RoleBinding it creates": its edges are
	// those of a subject holding only that Role. Name "*" stands for every Role of Namespace at once; with
	// Namespace AllNamespaces it includes the "*" node of every namespace that has Roles.
	KindBoundRole Kind = "BoundRole"
	// KindBoundClusterRole is "ClusterRole Name bound to the attacker" in Namespace: "" by a ClusterRoleBinding,
	// a namespace by a RoleBinding there, AllNamespaces by RoleBindings in every namespace. Its edges are those
	// of a subject holding only that ClusterRole in that scope; Name "*" stands for every ClusterRole.
	KindBoundClusterRole Kind = "BoundClusterRole"
)

// AllNamespaces is the Namespace of set nodes and AttackHop scopes that stand for every namespace; it is no
// valid namespace name.
const AllNamespaces = "*"

// ClusterAdminRef returns the reference of the cluster-admin terminal node.
func ClusterAdminRef() ObjectRef { return ObjectRef{Kind: KindClusterAdmin, Name: "cluster-admin"} }

// AttackHop is one edge of an attack path.
//
// Evidence lists the grants that make an escalation edge: every rule of every binding that grants a direct
// edge, ClusterRoleBindings first, then by namespace and name. A combination edge names each part (bind and
// create rolebindings; create secrets and a read path; create, approve and signer approval of a CSR;
// impersonate a group and a user or ServiceAccount; escalate and update) by one witness binding, the first
// that provides it, with every rule of it that does; E-ESCALATE also lists the binding that binds the
// escalated role to the subject, with a nil Rule and RuleIndex -1. Edges that leave a BoundRole or
// BoundClusterRole node are made by a binding the attacker would create: their paths have a nil Binding and
// Subject. Edges out of a NamespaceAdmin node, and structural edges, carry none.
type AttackHop struct {
	From, To  ObjectRef
	Edge      AttackEdgeKind
	Namespace string // scope of the grant: "" cluster-wide, AllNamespaces for every namespace
	Technique string // MITRE ATT&CK id, "" for structural edges
	Evidence  []GrantPath
	// Note qualifies the edge, e.g. that exec is granted with get only, which works on clusters before 1.35.
	Note string `json:",omitempty"`
	// Potential marks an edge that exists only if some object kiem cannot see does: with no Secret metadata
	// indexed, listing the secrets of a namespace reaches its ServiceAccounts only if token Secrets exist there;
	// update or patch of mutatingwebhookconfigurations needs one to exist.
	Potential bool `json:",omitempty"`
}

// String renders the hop for messages: "User/alice -[E-EXEC@ns]-> Pods/ns/*".
func (h AttackHop) String() string {
	scope := ""
	if h.Namespace != "" {
		scope = "@" + h.Namespace
	}
	return fmt.Sprintf("%s -[%s%s]-> %s", h.From, h.Edge, scope, h.To)
}

// AttackPath is a path of the attack graph: From of Hops[0] is its start, To of the last hop its target.
type AttackPath struct{ Hops []AttackHop }

// String renders the path on one line.
func (p AttackPath) String() string {
	parts := make([]string, len(p.Hops))
	for i, h := range p.Hops {
		parts[i] = h.String()
	}
	return strings.Join(parts, " ; ")
}

// AttackTargetKind says what an AttackTarget names.
type AttackTargetKind string

// Attack targets.
const (
	TargetClusterAdmin   AttackTargetKind = "ClusterAdmin"
	TargetSecrets        AttackTargetKind = "Secrets"
	TargetNode           AttackTargetKind = "Node"
	TargetUser           AttackTargetKind = "User"
	TargetGroup          AttackTargetKind = "Group"
	TargetServiceAccount AttackTargetKind = "ServiceAccount"
)

// AttackTarget is what Paths searches paths to.
type AttackTarget struct {
	Kind      AttackTargetKind
	Namespace string
	Name      string
}

// ClusterAdminTarget is the cluster-admin terminal.
func ClusterAdminTarget() AttackTarget { return AttackTarget{Kind: TargetClusterAdmin} }

// SecretsTarget is "read every Secret of namespace ns" (the KindSecrets node of ns).
func SecretsTarget(ns string) AttackTarget { return AttackTarget{Kind: TargetSecrets, Namespace: ns} }

// NodeTarget is a foothold on node name; "" means on any node.
func NodeTarget(name string) AttackTarget { return AttackTarget{Kind: TargetNode, Name: name} }

// SubjectTarget is acting as the User, Group or ServiceAccount ref.
func SubjectTarget(ref ObjectRef) AttackTarget {
	return AttackTarget{Kind: AttackTargetKind(ref.Kind), Namespace: ref.Namespace, Name: ref.Name}
}

// AttackGraph is the escalation graph of a snapshot: nodes are principals (User, Group, ServiceAccount), Pods,
// Nodes and the set and terminal nodes above; an edge means its source can act as, or take control of, its
// target. It is safe for concurrent use: Update takes the graph to a new snapshot while readers wait.
//
// The edges run in the direction of an attack:
//
//	User ──MEMBER_OF──▶ Group ──E-BIND, E-IMPERSONATE, …──▶ ClusterAdmin
//	  │                   ▲
//	  │ E-CREATE_POD_AS_SA│MEMBER_OF
//	  ▼                   │
//	ServiceAccounts/N ──INCLUDES──▶ ServiceAccount ◀──RUNS_AS── Pod ◀──HOSTS── Node ──E-CONTROL_PLANE──▶ ClusterAdmin
//	Secrets/N ──TOKEN_FOR──▶ ServiceAccount        Pods/N ──INCLUDES──▶ Pod        Nodes ──INCLUDES──▶ Node
//
// Edges are derived per unit: each binding (what its role grants its subjects in its scope), each namespace
// (its pods, ServiceAccounts and token Secrets), each principal (its groups, and the combination edges that need
// the union of its grants and its groups'), and each BoundRole or NamespaceAdmin node. Update re-derives only
// the units whose inputs changed.
type AttackGraph struct {
	mu sync.RWMutex
	st *attackState
}

// NewAttackGraph derives the attack graph of s. It returns ctx's error if ctx ends first.
func NewAttackGraph(ctx context.Context, s *Snapshot) (*AttackGraph, error) {
	st, err := buildAttackState(ctx, s)
	if err != nil {
		return nil, err
	}
	return &AttackGraph{st: st}, nil
}

// Snapshot returns the snapshot the graph was derived from.
func (g *AttackGraph) Snapshot() *Snapshot {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.st.snap
}

// Update moves the graph to next, re-deriving only what the changed objects touch: a binding's own edges; the
// bindings of a changed role (aggregated ClusterRoles whose rules change included); the namespace of a changed
// pod, ServiceAccount or Secret; the combination edges of the principals whose grants change; and every unit
// that read a changed object. changed must name every object that differs between Snapshot() and next, as the
// refs of the changes next was applied with (see Snapshot.Apply).
//
// The result equals NewAttackGraph(next). If ctx ends first, Update returns its error and the graph is left
// half-updated: every later call returns ErrAttackStale; rebuild it with NewAttackGraph.
func (g *AttackGraph) Update(ctx context.Context, next *Snapshot, changed []ObjectRef) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st.broken {
		return ErrAttackStale
	}
	if err := g.st.update(ctx, next, changed); err != nil {
		g.st.broken = true
		return fmt.Errorf("update attack graph: %w", err)
	}
	return nil
}

// Edges returns every edge of the graph, sorted by source, target, kind and scope. Parallel edges (the same
// pair, kind and scope granted by several bindings) are one hop with their evidence merged.
func (g *AttackGraph) Edges(ctx context.Context) ([]AttackHop, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.st.broken {
		return nil, ErrAttackStale
	}
	out := make([]AttackHop, 0, len(g.st.pairs))
	n := 0
	for _, l := range g.st.pairs {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for ; l != nil; l = l.next {
			out = append(out, g.st.hop(l))
		}
	}
	slices.SortFunc(out, compareHops)
	return out, nil
}

func compareHops(a, b AttackHop) int {
	if c := compareRefs(a.From, b.From); c != 0 {
		return c
	}
	if c := compareRefs(a.To, b.To); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Edge), string(b.Edge)); c != 0 {
		return c
	}
	return strings.Compare(a.Namespace, b.Namespace)
}
