package graph

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// capID names one attack-relevant capability a rule can grant: a set of requests (probes) whose answer the
// attack graph needs. Rules are matched against probes with the engine's own semantics (RuleAllows), so
// "pods/*" grants no capability on pods/exec, resourceNames narrow every named request, and create requests,
// which carry no name, are granted only by rules without resourceNames (or with [""]).
type capID uint8

const (
	// Namespaced resources: granted in a RoleBinding's namespace, or in every namespace by a ClusterRoleBinding.
	capCreatePods capID = iota
	capCreateWorkload
	capUpdateWorkload
	capPatchPods
	capExec
	capAttach
	capDebug
	capReadSecrets
	capCreateSecrets
	capTokenRequest
	capImpersonateSA
	capCreateRB
	capUpdateRB
	capBindRole
	capBindClusterRole // the bind check of a RoleBinding runs in the binding's namespace, so a RoleBinding grants it
	capEscalateRole
	capUpdateRole
	// Cluster-scoped resources: granted only by ClusterRoleBindings.
	capCreateCRB
	capUpdateCRB
	capEscalateClusterRole
	capUpdateClusterRole
	capNodeProxy
	capCreateCSR
	capApproveCSR
	capApproveSigner
	capImpersonateUser
	capImpersonateGroup
	capWebhook
	numCaps
)

// capAdmin is not a probe: a rule with every verb on every resource of every (or the core) group, for every
// name, makes its holder cluster-admin through a ClusterRoleBinding (KIEM-ESC-020).
const capAdmin = numCaps

// comboCaps are the capabilities that take part in combination edges, which need the union of a principal's
// grants: E-MINT_TOKEN_SECRET, E-IMPERSONATE of groups, E-CSR_FORGE, E-BIND and E-ESCALATE.
const comboCaps = 1<<capReadSecrets | 1<<capCreateSecrets | 1<<capCreatePods | 1<<capCreateWorkload |
	1<<capImpersonateSA | 1<<capImpersonateUser | 1<<capImpersonateGroup |
	1<<capCreateCSR | 1<<capApproveCSR | 1<<capApproveSigner |
	1<<capCreateRB | 1<<capUpdateRB | 1<<capBindRole | 1<<capBindClusterRole | 1<<capCreateCRB | 1<<capUpdateCRB |
	1<<capEscalateRole | 1<<capUpdateRole | 1<<capEscalateClusterRole | 1<<capUpdateClusterRole

// comboTriggers are the combo capabilities without which no combination edge exists: a principal whose union
// holds none of them has none.
const comboTriggers = 1<<capCreateSecrets | 1<<capImpersonateGroup | 1<<capCreateCSR |
	1<<capCreateRB | 1<<capUpdateRB | 1<<capCreateCRB | 1<<capUpdateCRB | 1<<capEscalateRole | 1<<capEscalateClusterRole

// escalateCaps trigger E-ESCALATE, which also needs the roles bound to the principal.
const escalateCaps = 1<<capEscalateRole | 1<<capEscalateClusterRole

const (
	groupRBAC      = rbacv1.GroupName
	groupCerts     = "certificates.k8s.io"
	groupAdmission = "admissionregistration.k8s.io"

	signerAPIServerClient = "kubernetes.io/kube-apiserver-client"
	// signerDomainWildcard is the second name the CSR approval check asks approve on signers for.
	signerDomainWildcard = "kubernetes.io/*"
)

// probe is one request a capability stands for.
type probe struct {
	verb, group, resource, sub string
}

func (p probe) action(name string) Action {
	return Action{Verb: p.verb, APIGroup: p.group, Resource: p.resource, Subresource: p.sub, Name: name}
}

// workloadKinds are the controllers whose pod template chooses the ServiceAccount (KIEM-ESC-001).
func workloadKinds() []probe {
	return []probe{
		{group: "apps", resource: "deployments"}, {group: "apps", resource: "replicasets"},
		{group: "apps", resource: "daemonsets"}, {group: "apps", resource: "statefulsets"},
		{group: "batch", resource: "jobs"}, {group: "batch", resource: "cronjobs"},
		{group: "", resource: "replicationcontrollers"},
	}
}

func withVerbs(verbs []string, targets ...probe) []probe {
	var out []probe
	for _, v := range verbs {
		for _, t := range targets {
			t.verb = v
			out = append(out, t)
		}
	}
	return out
}

// capProbes returns the requests each capability stands for.
func capProbes() [numCaps][]probe {
	upd := []string{"update", "patch"}
	one := func(verbs []string, group, resource, sub string) []probe {
		return withVerbs(verbs, probe{group: group, resource: resource, sub: sub})
	}
	create := []string{"create"}
	return [numCaps][]probe{
		capCreatePods:          one(create, "", "pods", ""),
		capCreateWorkload:      withVerbs(create, workloadKinds()...),
		capUpdateWorkload:      withVerbs(upd, workloadKinds()...),
		capPatchPods:           one(upd, "", "pods", ""),
		capExec:                one([]string{"create", "get"}, "", "pods", "exec"),
		capAttach:              one([]string{"create", "get"}, "", "pods", "attach"),
		capDebug:               one(upd, "", "pods", "ephemeralcontainers"),
		capReadSecrets:         one([]string{"get", "list", "watch"}, "", "secrets", ""),
		capCreateSecrets:       one(create, "", "secrets", ""),
		capTokenRequest:        one(create, "", "serviceaccounts", "token"),
		capImpersonateSA:       one([]string{"impersonate"}, "", "serviceaccounts", ""),
		capCreateRB:            one(create, groupRBAC, "rolebindings", ""),
		capUpdateRB:            one(upd, groupRBAC, "rolebindings", ""),
		capBindRole:            one([]string{"bind"}, groupRBAC, "roles", ""),
		capBindClusterRole:     one([]string{"bind"}, groupRBAC, "clusterroles", ""),
		capEscalateRole:        one([]string{"escalate"}, groupRBAC, "roles", ""),
		capUpdateRole:          one(upd, groupRBAC, "roles", ""),
		capCreateCRB:           one(create, groupRBAC, "clusterrolebindings", ""),
		capUpdateCRB:           one(upd, groupRBAC, "clusterrolebindings", ""),
		capEscalateClusterRole: one([]string{"escalate"}, groupRBAC, "clusterroles", ""),
		capUpdateClusterRole:   one(upd, groupRBAC, "clusterroles", ""),
		capNodeProxy:           one([]string{"get", "create"}, "", "nodes", "proxy"),
		capCreateCSR:           one(create, groupCerts, "certificatesigningrequests", ""),
		capApproveCSR:          one(upd, groupCerts, "certificatesigningrequests", "approval"),
		capApproveSigner:       one([]string{"approve"}, groupCerts, "signers", ""),
		capImpersonateUser:     one([]string{"impersonate"}, "", "users", ""),
		capImpersonateGroup:    one([]string{"impersonate"}, "", "groups", ""),
		capWebhook:             one([]string{"create", "update", "patch"}, groupAdmission, "mutatingwebhookconfigurations", ""),
	}
}

// capGrant is one rule of a role that grants a capability through one of its probes, for some name.
type capGrant struct {
	rule  int32
	probe uint8
}

// roleCaps is what one role grants the attack graph, computed once per role version and shared by every
// binding of it.
type roleCaps struct {
	rules  []rbacv1.PolicyRule
	grants [numCaps][]capGrant
	admin  []int32 // rules that grant capAdmin
	mask   uint64  // bit c set when grants[c] (or admin, for capAdmin) is not empty
}

// computeRoleCaps matches every rule of a role against every probe. A rule grants a probe for some name when
// RuleAllows allows the probe for the rule's first resource name (or without a name when it lists none); which
// names it grants is then asked of RuleAllows where it matters.
func computeRoleCaps(rules []rbacv1.PolicyRule, probes *[numCaps][]probe) *roleCaps {
	rc := &roleCaps{rules: rules}
	for ri := range rules {
		r := &rules[ri]
		name := ""
		if len(r.ResourceNames) > 0 {
			name = r.ResourceNames[0]
		}
		for c := range numCaps {
			for pi, p := range probes[c] {
				if RuleAllows(r, p.action(name)) {
					rc.grants[c] = append(rc.grants[c], capGrant{rule: int32(ri), probe: uint8(pi)})
					rc.mask |= 1 << c
				}
			}
		}
		if isAdminRule(r) {
			rc.admin = append(rc.admin, int32(ri))
			rc.mask |= 1 << capAdmin
		}
	}
	return rc
}

// isAdminRule reports whether r grants every verb on every resource of every group (or of the core group) for
// every name: the rule of cluster-admin and of the roles KIEM-ESC-020 calls administrator-equivalent.
func isAdminRule(r *rbacv1.PolicyRule) bool {
	return len(r.ResourceNames) == 0 && slices.Contains(r.Verbs, rbacv1.VerbAll) &&
		slices.Contains(r.Resources, rbacv1.ResourceAll) &&
		(slices.Contains(r.APIGroups, rbacv1.APIGroupAll) || slices.Contains(r.APIGroups, ""))
}

// isAdminRole reports whether some rule of rules is an admin rule.
func isAdminRole(rules []rbacv1.PolicyRule) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return isAdminRule(&r) })
}

// allowsName reports whether grant g of rc allows its probe for name (RuleAllows decides).
func (rc *roleCaps) allowsName(probes *[numCaps][]probe, c capID, g capGrant, name string) bool {
	return RuleAllows(&rc.rules[g.rule], probes[c][g.probe].action(name))
}

// everyName reports whether grant g allows its probe whatever the name: its rule lists no resourceNames.
func (rc *roleCaps) everyName(g capGrant) bool { return len(rc.rules[g.rule].ResourceNames) == 0 }

// names returns the resource names a grant is narrowed to (none when it allows every name).
func (rc *roleCaps) names(g capGrant) []string { return rc.rules[g.rule].ResourceNames }
