package graph

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// rule builds a resource rule: rule("get,list", ",apps", "pods,pods/log") ("" is the core group).
func rule(verbs, groups, resources string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: split(verbs), APIGroups: split(groups), Resources: split(resources), ResourceNames: names}
}

func urlRule(verbs string, urls ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: split(verbs), NonResourceURLs: urls}
}

func split(s string) []string {
	if s == "-" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestRuleAllows(t *testing.T) {
	pods := Action{Verb: "get", Resource: "pods", Namespace: "ns1"}
	with := func(a Action, f func(*Action)) Action { f(&a); return a }
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		act  Action
		want bool
	}{
		{"exact", rule("get", "", "pods"), pods, true},
		{"verb star", rule("*", "", "pods"), pods, true},
		{"group star", rule("get", "*", "pods"), pods, true},
		{"resource star", rule("get", "", "*"), pods, true},
		{"verb case matters", rule("GET", "", "pods"), pods, false},
		{"other verb", rule("list", "", "pods"), pods, false},
		{"core group is empty string", rule("get", "apps", "pods"), pods, false},
		{"named group", rule("get", "apps", "deployments"), Action{Verb: "get", APIGroup: "apps", Resource: "deployments"}, true},
		{"core rule not for apps", rule("get", "", "deployments"), Action{Verb: "get", APIGroup: "apps", Resource: "deployments"}, false},
		{"no verbs", rule("-", "", "pods"), pods, false},
		{"no groups", rule("get", "-", "pods"), pods, false},
		{"subresource exact", rule("create", "", "pods/exec"), Action{Verb: "create", Resource: "pods", Subresource: "exec"}, true},
		{"resource does not cover subresource", rule("create", "", "pods"), Action{Verb: "create", Resource: "pods", Subresource: "exec"}, false},
		{"star covers subresource", rule("create", "", "*"), Action{Verb: "create", Resource: "pods", Subresource: "exec"}, true},
		{"star slash sub", rule("get", "*", "*/scale"), Action{Verb: "get", APIGroup: "apps", Resource: "deployments", Subresource: "scale"}, true},
		{"star slash sub other sub", rule("get", "*", "*/scale"), Action{Verb: "get", Resource: "pods", Subresource: "status"}, false},
		{"star slash sub needs subresource", rule("get", "*", "*/scale"), Action{Verb: "get", Resource: "scale"}, false},
		{"star slash suffix is exact", rule("get", "", "*/xstatus"), Action{Verb: "get", Resource: "pods", Subresource: "status"}, false},
		{"pods/* is not a glob", rule("create", "", "pods/*"), Action{Verb: "create", Resource: "pods", Subresource: "exec"}, false},
		{"pods/* names itself", rule("create", "", "pods/*"), Action{Verb: "create", Resource: "pods", Subresource: "*"}, true},
		{"resourceNames match", rule("get", "", "secrets", "a", "b"), Action{Verb: "get", Resource: "secrets", Name: "b"}, true},
		{"resourceNames other", rule("get", "", "secrets", "a"), Action{Verb: "get", Resource: "secrets", Name: "c"}, false},
		{"resourceNames list without name", rule("list", "", "secrets", "a"), Action{Verb: "list", Resource: "secrets"}, false},
		{"resourceNames list with name", rule("list", "", "secrets", "a"), Action{Verb: "list", Resource: "secrets", Name: "a"}, true},
		{"resourceNames create without name", rule("create", "", "pods", "a"), Action{Verb: "create", Resource: "pods"}, false},
		{"resourceNames create subresource with name", rule("create", "", "pods/exec", "web"), Action{Verb: "create", Resource: "pods", Subresource: "exec", Name: "web"}, true},
		{"resourceNames empty name matches unnamed", rule("list", "", "secrets", ""), Action{Verb: "list", Resource: "secrets"}, true},
		{"resourceNames empty name not named", rule("get", "", "secrets", ""), Action{Verb: "get", Resource: "secrets", Name: "a"}, false},
		{"resource rule not for URL", rule("get", "*", "*"), Action{Verb: "get", NonResourceURL: "/healthz"}, false},
		{"url exact", urlRule("get", "/healthz"), Action{Verb: "get", NonResourceURL: "/healthz"}, true},
		{"url exact no prefix", urlRule("get", "/healthz"), Action{Verb: "get", NonResourceURL: "/healthz/etcd"}, false},
		{"url star prefix", urlRule("get", "/healthz/*"), Action{Verb: "get", NonResourceURL: "/healthz/etcd"}, true},
		{"url star prefix needs slash", urlRule("get", "/healthz/*"), Action{Verb: "get", NonResourceURL: "/healthz"}, false},
		{"url star mid word", urlRule("get", "/api*"), Action{Verb: "get", NonResourceURL: "/apis/apps"}, true},
		{"url double star trimmed", urlRule("get", "/a**"), Action{Verb: "get", NonResourceURL: "/abc"}, true},
		{"url all", urlRule("get", "*"), Action{Verb: "get", NonResourceURL: "/anything"}, true},
		{"url rule not for resources", urlRule("*", "*"), pods, false},
		{"url verb", urlRule("post", "/healthz"), Action{Verb: "get", NonResourceURL: "/healthz"}, false},
		{"both kinds in one rule", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}, NonResourceURLs: []string{"/x"}},
			Action{Verb: "get", NonResourceURL: "/x"}, true},
		{"url ignores namespace", urlRule("get", "/x"), with(Action{Verb: "get", NonResourceURL: "/x"}, func(a *Action) { a.Namespace = "ns1" }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RuleAllows(&tt.rule, tt.act); got != tt.want {
				t.Fatalf("RuleAllows(%s, %+v) = %v, want %v", FormatRule(&tt.rule), tt.act, got, tt.want)
			}
		})
	}
}
