package main

import (
	"fmt"
	"slices"
	"strings"
)

// apiResource is a built-in resource as discovery on a v1.33 apiserver describes it.
type apiResource struct {
	group, resource, singular string
	namespaced                bool
	short                     []string
}

// builtinResources lists the resources a v1.33 kube-apiserver serves by default, with the short names kubectl
// knows. kiem has no discovery endpoint to ask, so it ships this table (ARCHITECTURE §3).
func builtinResources() []apiResource {
	ns, cl := true, false
	r := func(group, resource, singular string, namespaced bool, short ...string) apiResource {
		return apiResource{group, resource, singular, namespaced, short}
	}
	return []apiResource{
		r("", "bindings", "binding", ns),
		r("", "componentstatuses", "componentstatus", cl, "cs"),
		r("", "configmaps", "configmap", ns, "cm"),
		r("", "endpoints", "endpoints", ns, "ep"),
		r("", "events", "event", ns, "ev"),
		r("", "limitranges", "limitrange", ns, "limits"),
		r("", "namespaces", "namespace", cl, "ns"),
		r("", "nodes", "node", cl, "no"),
		r("", "persistentvolumeclaims", "persistentvolumeclaim", ns, "pvc"),
		r("", "persistentvolumes", "persistentvolume", cl, "pv"),
		r("", "pods", "pod", ns, "po"),
		r("", "podtemplates", "podtemplate", ns),
		r("", "replicationcontrollers", "replicationcontroller", ns, "rc"),
		r("", "resourcequotas", "resourcequota", ns, "quota"),
		r("", "secrets", "secret", ns),
		r("", "serviceaccounts", "serviceaccount", ns, "sa"),
		r("", "services", "service", ns, "svc"),
		r("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", cl),
		r("admissionregistration.k8s.io", "validatingadmissionpolicies", "validatingadmissionpolicy", cl),
		r("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", cl),
		r("admissionregistration.k8s.io", "validatingwebhookconfigurations", "validatingwebhookconfiguration", cl),
		r("apiextensions.k8s.io", "customresourcedefinitions", "customresourcedefinition", cl, "crd", "crds"),
		r("apiregistration.k8s.io", "apiservices", "apiservice", cl),
		r("apps", "controllerrevisions", "controllerrevision", ns),
		r("apps", "daemonsets", "daemonset", ns, "ds"),
		r("apps", "deployments", "deployment", ns, "deploy"),
		r("apps", "replicasets", "replicaset", ns, "rs"),
		r("apps", "statefulsets", "statefulset", ns, "sts"),
		r("authentication.k8s.io", "selfsubjectreviews", "selfsubjectreview", cl),
		r("authentication.k8s.io", "tokenreviews", "tokenreview", cl),
		r("authorization.k8s.io", "localsubjectaccessreviews", "localsubjectaccessreview", ns),
		r("authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectaccessreview", cl),
		r("authorization.k8s.io", "selfsubjectrulesreviews", "selfsubjectrulesreview", cl),
		r("authorization.k8s.io", "subjectaccessreviews", "subjectaccessreview", cl),
		r("autoscaling", "horizontalpodautoscalers", "horizontalpodautoscaler", ns, "hpa"),
		r("batch", "cronjobs", "cronjob", ns, "cj"),
		r("batch", "jobs", "job", ns),
		r("certificates.k8s.io", "certificatesigningrequests", "certificatesigningrequest", cl, "csr"),
		r("coordination.k8s.io", "leases", "lease", ns),
		r("discovery.k8s.io", "endpointslices", "endpointslice", ns),
		r("events.k8s.io", "events", "event", ns, "ev"),
		r("flowcontrol.apiserver.k8s.io", "flowschemas", "flowschema", cl),
		r("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", "prioritylevelconfiguration", cl),
		r("networking.k8s.io", "ingressclasses", "ingressclass", cl),
		r("networking.k8s.io", "ingresses", "ingress", ns, "ing"),
		r("networking.k8s.io", "ipaddresses", "ipaddress", cl, "ip"),
		r("networking.k8s.io", "networkpolicies", "networkpolicy", ns, "netpol"),
		r("networking.k8s.io", "servicecidrs", "servicecidr", cl),
		r("node.k8s.io", "runtimeclasses", "runtimeclass", cl),
		r("policy", "poddisruptionbudgets", "poddisruptionbudget", ns, "pdb"),
		// kubectl has no short names for the RBAC kinds; rb and crb are kiem's, for people who audit RBAC all day.
		r("rbac.authorization.k8s.io", "clusterrolebindings", "clusterrolebinding", cl, "crb"),
		r("rbac.authorization.k8s.io", "clusterroles", "clusterrole", cl),
		r("rbac.authorization.k8s.io", "rolebindings", "rolebinding", ns, "rb"),
		r("rbac.authorization.k8s.io", "roles", "role", ns),
		r("scheduling.k8s.io", "priorityclasses", "priorityclass", cl, "pc"),
		r("storage.k8s.io", "csidrivers", "csidriver", cl),
		r("storage.k8s.io", "csinodes", "csinode", cl),
		r("storage.k8s.io", "csistoragecapacities", "csistoragecapacity", ns),
		r("storage.k8s.io", "storageclasses", "storageclass", cl, "sc"),
		r("storage.k8s.io", "volumeattachments", "volumeattachment", cl),
	}
}

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
	for _, r := range builtinResources() {
		if hasGroup && r.group != group {
			continue
		}
		if r.resource == resource || r.singular == resource || slices.Contains(r.short, resource) {
			return resolvedResource{group: r.group, resource: r.resource, namespaced: r.namespaced, known: true}
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
