package indexer

import (
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

// Workloads in snapshot files stand for the pods they will run. A repository of manifests holds Deployments,
// DaemonSets, StatefulSets, ReplicaSets, ReplicationControllers, Jobs and CronJobs rather than Pods, yet which
// ServiceAccount a workload runs as and whether it mounts the token are what pod risk rules ask. So the file
// loader turns each workload into one graph.Pod for its pod template:
//
//   - Name is the lower-case kind, a slash and the workload's name ("deployment/web", "cronjob/backup"). A slash
//     can be in no real pod's name, so a template pod never collides with a real pod, nor a Deployment with a
//     StatefulSet of the same name in the same namespace, and the name does not change when other files add
//     or remove a workload: fingerprints and suppressions stay put.
//   - Namespace is the workload's (defaulted as for any namespaced object), Labels the template's, Owner the
//     workload itself, Origin the workload's file and line.
//   - ServiceAccount and AutomountToken come from the template's spec as from a pod's (the deprecated
//     serviceAccount field, then "default"); a CronJob's template is spec.jobTemplate.spec.template.
//   - A workload controlled by another workload kind (a ReplicaSet of a Deployment, a Job of a CronJob, as
//     `kubectl get -o yaml` dumps them) is skipped: its owner's template already stands for its pods.
//
// Live clusters are indexed with their real pods; only snapshot files are read this way.

// workloadKind reports whether t is a workload kind whose pod template the loader reads, in an API version
// whose template has the fields kiem keeps (every served version of these kinds does).
func workloadKind(t typeMeta) bool {
	switch t.Kind {
	case "Deployment":
		return oneOf(t.APIVersion, "apps/v1", "apps/v1beta2", "apps/v1beta1", "extensions/v1beta1")
	case "DaemonSet", "ReplicaSet":
		return oneOf(t.APIVersion, "apps/v1", "apps/v1beta2", "extensions/v1beta1")
	case "StatefulSet":
		return oneOf(t.APIVersion, "apps/v1", "apps/v1beta2", "apps/v1beta1")
	case "ReplicationController":
		return t.APIVersion == "v1"
	case "Job":
		return t.APIVersion == "batch/v1"
	case "CronJob":
		return oneOf(t.APIVersion, "batch/v1", "batch/v1beta1")
	}
	return false
}

func oneOf(s string, set ...string) bool { return slices.Contains(set, s) }

// templatePodName is the name of the pod that stands for a workload's pod template: "deployment/web" for the
// Deployment web.
func templatePodName(workloadKind, name string) string {
	return strings.ToLower(workloadKind) + "/" + name
}

type (
	// workloadDoc is a workload reduced to its metadata and pod template. Both template fields are decoded
	// whatever the kind; the kind decides which one counts.
	workloadDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
		Spec     struct {
			Template    *podTemplateDoc `json:"template" yaml:"template"`
			JobTemplate *struct {
				Spec struct {
					Template *podTemplateDoc `json:"template" yaml:"template"`
				} `json:"spec" yaml:"spec"`
			} `json:"jobTemplate" yaml:"jobTemplate"`
		} `json:"spec" yaml:"spec"`
	}
	podTemplateDoc struct {
		Metadata struct {
			Labels map[string]string `json:"labels" yaml:"labels"`
		} `json:"metadata" yaml:"metadata"`
		Spec struct {
			ServiceAccountName           string `json:"serviceAccountName" yaml:"serviceAccountName"`
			DeprecatedServiceAccount     string `json:"serviceAccount" yaml:"serviceAccount"`
			AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken" yaml:"automountServiceAccountToken"`
			NodeName                     string `json:"nodeName" yaml:"nodeName"`
		} `json:"spec" yaml:"spec"`
	}
)

// build converts the workload into its template pod; kind is the workload's kind (see loadedKind). It returns
// nil for a workload another workload controls.
func (d *workloadDoc) build(c *converter, kind graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, true, origin)
	if err != nil {
		return nil, err
	}
	for _, o := range d.Metadata.OwnerReferences {
		if o.Controller != nil && *o.Controller && (o.Kind == "Deployment" || o.Kind == "CronJob") {
			return nil, nil
		}
	}
	tmpl := d.Spec.Template
	if kind == "CronJob" {
		tmpl = nil
		if d.Spec.JobTemplate != nil {
			tmpl = d.Spec.JobTemplate.Spec.Template
		}
	}
	if tmpl == nil {
		// The apiserver rejects a workload without a template; as everywhere else, kiem reads what is written,
		// and an empty template runs as the default ServiceAccount.
		tmpl = &podTemplateDoc{}
	}
	// The workload's UID, resourceVersion and annotations are not the pod's; live pods keep no annotations.
	p := &graph.Pod{
		Meta: graph.Meta{
			Namespace: m.Namespace,
			Name:      templatePodName(string(kind), m.Name),
			Labels:    tmpl.Metadata.Labels,
			Origin:    m.Origin,
		},
		ServiceAccount: podServiceAccount(tmpl.Spec.ServiceAccountName, tmpl.Spec.DeprecatedServiceAccount),
		AutomountToken: tmpl.Spec.AutomountServiceAccountToken,
		NodeName:       tmpl.Spec.NodeName,
		Owner:          &graph.OwnerRef{Kind: string(kind), Name: m.Name},
	}
	return p, nil
}
