package graph

import "sync"

// APIResource is a built-in resource as discovery on a v1.33 apiserver describes it.
type APIResource struct {
	Group, Resource, Singular string
	Namespaced                bool
	Short                     []string
}

// BuiltinResources lists the resources a v1.33 kube-apiserver serves by default, with the short names kubectl
// knows. kiem has no discovery endpoint to ask, so it ships this table (ARCHITECTURE §3).
func BuiltinResources() []APIResource {
	ns, cl := true, false
	r := func(group, resource, singular string, namespaced bool, short ...string) APIResource {
		return APIResource{group, resource, singular, namespaced, short}
	}
	return []APIResource{
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

var clusterScoped = sync.OnceValue(func() map[[2]string]bool {
	m := map[[2]string]bool{}
	for _, r := range BuiltinResources() {
		m[[2]string{r.Group, r.Resource}] = !r.Namespaced
	}
	return m
})

// ClusterScoped reports whether the built-in resource group/resource is cluster-scoped; known is false for
// resources kiem does not ship (custom resources).
func ClusterScoped(group, resource string) (cluster, known bool) {
	cluster, known = clusterScoped()[[2]string{group, resource}]
	return cluster, known
}
