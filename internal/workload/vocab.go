package workload

// Vocabularies the generator draws names and rules from. They are functions rather than package variables so that
// no caller can mutate shared state; each call returns a fresh slice.

// teams returns the names of the engineering teams that own tenant namespaces.
func teams() []string {
	return []string{
		"payments", "checkout", "search", "catalog", "identity", "billing", "growth", "ads", "data", "ml",
		"platform", "security", "mobile", "web", "ledger", "fraud", "risk", "shipping", "inventory", "pricing",
		"notifications", "messaging", "media", "analytics", "reporting", "crm", "support", "partners", "onboarding",
		"loyalty", "recommendations", "maps", "booking", "observability", "storage", "network", "edge", "gaming",
		"infra", "compliance",
	}
}

// apps returns application and component names.
func apps() []string {
	return []string{
		"api", "web", "worker", "gateway", "frontend", "backend", "scheduler", "ingest", "indexer", "processor",
		"exporter", "sync", "auth", "cache", "queue", "stream", "etl", "reporter", "notifier", "mailer", "batch",
		"cron", "portal", "admin", "graphql", "grpc", "proxy", "router", "collector", "aggregator", "store", "db",
		"feed", "matcher", "tracker", "uploader", "renderer", "transcoder", "scanner", "webhook", "console",
		"dashboard", "analyzer", "planner", "engine", "ranker", "resolver", "importer", "archiver", "signer",
	}
}

// envs returns environment suffixes of tenant namespaces.
func envs() []string {
	return []string{"dev", "staging", "prod", "qa", "perf", "sandbox", "preview", "canary"}
}

// platformNamespaces returns the namespaces platform teams install shared operators into.
func platformNamespaces() []string {
	return []string{
		"monitoring", "logging", "ingress-nginx", "cert-manager", "argocd", "kyverno", "flux-system",
		"istio-system", "external-dns", "velero", "vault", "keda", "tekton-pipelines", "gatekeeper-system",
		"external-secrets", "cnpg-system", "strimzi", "crossplane-system",
	}
}

// saSuffixes returns the suffixes that turn an app name into a ServiceAccount name ("" keeps the app name).
func saSuffixes() []string {
	return []string{"", "", "", "-worker", "-migrate", "-cron", "-reader", "-deployer", "-sidecar", "-sa"}
}

// sharedServiceAccounts returns ServiceAccount names that tooling creates in many namespaces.
func sharedServiceAccounts() []string {
	return []string{
		"ci-deployer", "gitlab-runner", "argocd-manager", "prometheus", "fluent-bit", "vault-auth",
		"external-secrets", "backup", "tekton-bot", "jenkins", "spark", "airflow-worker", "otel-collector",
	}
}

// roleNames returns name stems of namespaced Roles; the generator prefixes some with an app name.
func roleNames() []string {
	return []string{
		"reader", "editor", "deployer", "ci-deploy", "secret-reader", "configmap-editor", "leader-election",
		"pod-exec", "log-reader", "operator", "scaler", "job-runner", "debugger", "namespace-admin", "viewer",
		"release-manager", "metrics", "autoscaler", "backup", "migrations",
	}
}

// bindingStems returns name stems of RoleBindings and ClusterRoleBindings.
func bindingStems() []string {
	return []string{"binding", "rb", "access", "grant", "users", "devs", "oncall", "ci", "team", "readers"}
}

// firstNames returns given names of human users; a few are not ASCII, as real directories hold.
func firstNames() []string {
	return []string{
		"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
		"olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin", "zoe", "amir", "bea", "chen",
		"dmitri", "elena", "farah", "gustavo", "hana", "igor", "jamal", "kenji", "lucia", "mateo", "nora",
		"omar", "priya", "quinn", "rosa", "sanjay", "tomas", "uma", "vera", "wei", "xavier", "yuki", "zainab",
		"andré", "björn", "søren", "zoë",
	}
}

// lastNames returns family names of human users.
func lastNames() []string {
	return []string{
		"smith", "jones", "garcia", "muller", "rossi", "kowalski", "nguyen", "kim", "patel", "okafor", "silva",
		"novak", "tanaka", "dubois", "hansen", "ivanova", "cohen", "moreau", "schmidt", "lopez", "khan", "wang",
		"singh", "costa", "berg", "fischer", "horvat", "larsen", "mendes", "nakamura", "oconnor", "petrov",
		"quispe", "romero", "sato", "teixeira", "ueda", "vargas", "weber", "yilmaz", "zhou", "abara", "brooks",
	}
}

// mailDomains returns e-mail domains of users.
func mailDomains() []string {
	return []string{"example.com", "example.com", "example.com", "corp.example.com", "contractors.example.net", "example.org"}
}

// builtinClusterWide returns the kubeadm v1.33 built-in ClusterRoles that ClusterRoleBindings of real clusters name, with a weight.
func builtinClusterWide() []weighted {
	return []weighted{
		{"view", 30}, {"cluster-admin", 8}, {"edit", 6}, {"admin", 3}, {"system:auth-delegator", 20},
		{"system:monitoring", 4}, {"system:public-info-viewer", 2}, {"system:discovery", 2},
		{"system:heapster", 2}, {"system:persistent-volume-provisioner", 3}, {"system:node-proxier", 2},
		{"system:kube-dns", 1}, {"system:basic-user", 1}, {"system:aggregate-to-view", 1},
		{"system:certificates.k8s.io:certificatesigningrequests:nodeclient", 1}, {"system:node", 1},
	}
}

// weighted is a name with a relative weight for weighted draws.
type weighted struct {
	name   string
	weight int
}

// operator is a controller that ships CRDs: its name, API group and the plural resources of its kinds.
type operator struct {
	name  string
	group string
	kinds []string
}

// knownOperators returns operators real clusters commonly run.
func knownOperators() []operator {
	return []operator{
		{"cert-manager", "cert-manager.io", []string{"certificates", "issuers", "clusterissuers", "certificaterequests"}},
		{"external-secrets", "external-secrets.io", []string{"externalsecrets", "secretstores", "clustersecretstores"}},
		{"prometheus-operator", "monitoring.coreos.com", []string{"prometheuses", "servicemonitors", "podmonitors", "prometheusrules", "alertmanagers"}},
		{"argocd", "argoproj.io", []string{"applications", "appprojects", "applicationsets"}},
		{"strimzi", "kafka.strimzi.io", []string{"kafkas", "kafkatopics", "kafkausers"}},
		{"cnpg", "postgresql.cnpg.io", []string{"clusters", "backups", "scheduledbackups", "poolers"}},
		{"keda", "keda.sh", []string{"scaledobjects", "scaledjobs", "triggerauthentications"}},
		{"velero", "velero.io", []string{"backups", "restores", "schedules", "backupstoragelocations"}},
		{"crossplane", "pkg.crossplane.io", []string{"providers", "configurations", "functions"}},
		{"istio", "networking.istio.io", []string{"virtualservices", "destinationrules", "gateways", "serviceentries"}},
		{"kyverno", "kyverno.io", []string{"policies", "clusterpolicies", "policyexceptions"}},
		{"tekton", "tekton.dev", []string{"pipelines", "pipelineruns", "tasks", "taskruns"}},
		{"flux", "kustomize.toolkit.fluxcd.io", []string{"kustomizations"}},
		{"grafana-operator", "grafana.integreatly.org", []string{"grafanas", "grafanadashboards", "grafanadatasources"}},
		{"redis-operator", "redis.redis.opstreelabs.in", []string{"redis", "redisclusters", "redisreplications"}},
		{"eck-operator", "elasticsearch.k8s.elastic.co", []string{"elasticsearches"}},
	}
}

// resource is one entry of the resource catalog: a (sub)resource of an API group and the verbs that make sense
// on it. A nil verbs slice means "any of the general verb sets".
type resource struct {
	group string
	name  string
	verbs []string
}

// namespacedResources returns the namespaced resources Roles grant, with the subresources real roles name.
func namespacedResources() []resource {
	execVerbs := []string{"create", "get"}
	statusVerbs := []string{"get", "patch", "update"}
	return []resource{
		{"", "pods", nil}, {"", "pods/log", []string{"get", "list"}}, {"", "pods/exec", execVerbs},
		{"", "pods/attach", execVerbs}, {"", "pods/portforward", execVerbs}, {"", "services", nil},
		{"", "endpoints", nil}, {"", "configmaps", nil}, {"", "secrets", nil}, {"", "persistentvolumeclaims", nil},
		{"", "serviceaccounts", nil}, {"", "serviceaccounts/token", []string{"create"}}, {"", "events", nil},
		{"", "pods/status", statusVerbs}, {"", "replicationcontrollers", nil}, {"", "resourcequotas", nil},
		{"apps", "deployments", nil}, {"apps", "deployments/scale", statusVerbs}, {"apps", "statefulsets", nil},
		{"apps", "statefulsets/scale", statusVerbs}, {"apps", "daemonsets", nil}, {"apps", "replicasets", nil},
		{"batch", "jobs", nil}, {"batch", "cronjobs", nil}, {"batch", "jobs/status", statusVerbs},
		{"networking.k8s.io", "ingresses", nil}, {"networking.k8s.io", "networkpolicies", nil},
		{"autoscaling", "horizontalpodautoscalers", nil}, {"policy", "poddisruptionbudgets", nil},
		{"coordination.k8s.io", "leases", nil}, {"discovery.k8s.io", "endpointslices", nil},
		{"rbac.authorization.k8s.io", "roles", nil}, {"rbac.authorization.k8s.io", "rolebindings", nil},
	}
}

// clusterResources returns cluster-scoped resources and non-namespaced actions that ClusterRoles grant.
func clusterResources() []resource {
	review := []string{"create"}
	return []resource{
		{"", "nodes", nil}, {"", "namespaces", nil}, {"", "persistentvolumes", nil},
		{"storage.k8s.io", "storageclasses", nil}, {"storage.k8s.io", "volumeattachments", nil},
		{"apiextensions.k8s.io", "customresourcedefinitions", nil},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", nil},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", nil},
		{"certificates.k8s.io", "certificatesigningrequests", nil},
		{"authentication.k8s.io", "tokenreviews", review},
		{"authorization.k8s.io", "subjectaccessreviews", review},
		{"scheduling.k8s.io", "priorityclasses", nil}, {"node.k8s.io", "runtimeclasses", nil},
		{"", "nodes/metrics", []string{"get"}}, {"", "nodes/stats", []string{"get"}},
	}
}

// riskyResources returns rarely granted, dangerous permissions: nodes/proxy, impersonation, bind and escalate, token
// creation, cluster-wide secrets.
func riskyResources() []resource {
	return []resource{
		{"", "nodes/proxy", []string{"get", "create"}},
		{"", "users", []string{"impersonate"}}, {"", "groups", []string{"impersonate"}},
		{"", "serviceaccounts", []string{"impersonate"}},
		{"rbac.authorization.k8s.io", "clusterroles", []string{"bind", "escalate", "get"}},
		{"rbac.authorization.k8s.io", "clusterrolebindings", []string{"create", "update", "patch"}},
		{"", "serviceaccounts/token", []string{"create"}},
		{"", "secrets", []string{"get", "list", "watch"}},
		{"", "pods/exec", []string{"create"}},
	}
}

// verbSets returns the verb lists rules commonly carry, with weights.
func verbSets() [][]string {
	return [][]string{
		{"get", "list", "watch"}, {"get", "list", "watch"}, {"get", "list", "watch"}, {"get", "list", "watch"},
		{"get", "list", "watch", "create", "update", "patch", "delete"},
		{"get", "list", "watch", "create", "update", "patch", "delete"},
		{"create", "delete", "get", "list", "patch", "update", "watch"},
		{"get", "list"}, {"get", "list"}, {"get"}, {"create", "update", "patch"}, {"update", "patch"},
		{"delete", "deletecollection"}, {"*"},
	}
}

// nonResourceURLSets returns nonResourceURLs rules, as metrics readers and health probes use them.
func nonResourceURLSets() [][]string {
	return [][]string{
		{"/metrics"}, {"/metrics"}, {"/metrics", "/metrics/cadvisor"}, {"/healthz", "/readyz", "/livez"},
		{"/logs", "/logs/*"}, {"/debug/pprof/*"}, {"/healthz/*", "/livez/*", "/readyz/*"},
	}
}
