package main

import (
	"fmt"
	"github.com/kiem-io/kiem/graph"
	"slices"
	"strings"
)

// resolvedResource is the outcome of resolving a TYPE argument.
type resolvedResource struct {
	group, resource string
	// namespaced is known only for built-in resources.
	namespaced, known bool
	// note explains a guess, for a warning on stderr.
	note string
}

// resolveResource resolves a kubectl TYPE argument (pods, po, pod, deployments.apps, deploy, deployments.v1.apps,
// widgets.example.com, *) the way `kubectl auth can-i` does through discovery. Resources kiem does not know
// (custom resources) are taken as given: "widgets.example.com" is resource widgets in group example.com;
// a bare "widgets" takes the group the rules in scope name it under when that group is unique (groupsOf), as
// discovery would, and otherwise the core group.
func resolveResource(arg string, groupsOf func(resource string) []string) resolvedResource {
	if arg == "*" {
		return resolvedResource{resource: "*"}
	}
	arg = strings.ToLower(arg)
	resource, group, _ := strings.Cut(arg, ".")
	if strings.Count(arg, ".") >= 2 {
		// resource.version.group, when the second part is a version.
		parts := strings.SplitN(arg, ".", 3)
		if isVersion(parts[1]) {
			resource, group = parts[0], parts[2]
		}
	}
	hasGroup := strings.Contains(arg, ".")
	for _, r := range graph.BuiltinResources() {
		if hasGroup && r.Group != group {
			continue
		}
		if r.Resource == resource || r.Singular == resource || slices.Contains(r.Short, resource) {
			return resolvedResource{group: r.Group, resource: r.Resource, namespaced: r.Namespaced, known: true}
		}
	}
	if hasGroup {
		return resolvedResource{group: group, resource: resource}
	}
	if gs := groupsOf(resource); len(gs) == 1 {
		return resolvedResource{group: gs[0], resource: resource,
			note: fmt.Sprintf("resource type '%s' is not built in; the rules name it only in API group %q, so that group is used", resource, gs[0])}
	}
	return resolvedResource{resource: resource,
		note: fmt.Sprintf("resource type '%s' is not built in; taken as given in the core API group (write RESOURCE.GROUP for a custom resource)", resource)}
}

func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] < '0' || s[1] > '9' {
		return false
	}
	return true
}

// knownVerb reports whether kubectl knows verb for resource (or non-resource) requests; unknown verbs only warn.
func knownVerb(verb string, nonResource bool) bool {
	if nonResource {
		switch verb {
		case "get", "put", "post", "head", "options", "delete", "patch", "*":
			return true
		}
		return false
	}
	switch verb {
	case "*", "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
		"use", "bind", "impersonate", "escalate", "approve", "sign":
		return true
	}
	return false
}
