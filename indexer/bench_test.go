package indexer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// BenchmarkLoad loads a synthetic snapshot of the size of the reference workload's bulk: n Roles, n RoleBindings
// and n Pods shaped like `kubectl get -o yaml` output (managedFields aside), as a multi-document YAML stream, as
// one `kind: List` YAML document, and as a JSON List.
func BenchmarkLoad(b *testing.B) {
	const n = 50_000
	for _, format := range []string{"multidoc.yaml", "list.yaml", "list.json"} {
		b.Run(format, func(b *testing.B) {
			file := filepath.Join(b.TempDir(), format)
			size := writeSynthetic(b, file, n)
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				objs, _, err := Load(b.Context(), []string{file}, LoadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if got, want := objs.Count(), 3*n; got != want {
					b.Fatalf("Count()=%d, want %d", got, want)
				}
			}
			b.ReportMetric(float64(3*n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}

// writeSynthetic writes n Roles, RoleBindings and Pods to file, in the format its name says, and returns its size.
// JSON items come from the YAML templates converted once, with their placeholders, so generating stays fast.
func writeSynthetic(tb testing.TB, file string, n int) int64 {
	tb.Helper()
	templates := []string{syntheticRole, syntheticBinding, syntheticPod}
	format := filepath.Base(file)
	if format == "list.json" {
		for i, tmpl := range templates {
			j, err := yaml.YAMLToJSON([]byte(tmpl))
			if err != nil {
				tb.Fatal(err)
			}
			templates[i] = string(j)
		}
	}
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	switch format {
	case "list.yaml":
		w.WriteString("apiVersion: v1\nitems:\n")
	case "list.json":
		w.WriteString("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n")
	}
	for i := range n {
		ns := fmt.Sprintf("team-%04d", i%2000)
		for k, obj := range []string{
			fmt.Sprintf(templates[0], i, ns, i),
			fmt.Sprintf(templates[1], i, ns, i, i, i, i, ns),
			fmt.Sprintf(templates[2], i, ns, i, i, i, i%500, i, i),
		} {
			switch format {
			case "multidoc.yaml":
				fmt.Fprintf(w, "---\n%s", obj)
			case "list.yaml":
				w.WriteString(indentItem(obj, 0))
			case "list.json":
				if i > 0 || k > 0 {
					w.WriteString(",\n")
				}
				w.WriteString(obj)
			}
		}
	}
	switch format {
	case "list.yaml":
		w.WriteString("kind: List\nmetadata:\n  resourceVersion: \"\"\n")
	case "list.json":
		w.WriteString("\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\"resourceVersion\": \"\"}\n}\n")
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return size
}

const syntheticRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  creationTimestamp: "2025-03-01T10:00:00Z"
  labels:
    app.kubernetes.io/managed-by: helm
  name: role-%d
  namespace: "%s"
  resourceVersion: "1%d"
  uid: 0a1b2c3d-0000-4000-8000-000000000001
rules:
- apiGroups:
  - ""
  resources:
  - configmaps
  - secrets
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - apps
  resources:
  - deployments
  - deployments/scale
  verbs:
  - get
  - update
  - patch
`

const syntheticBinding = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  creationTimestamp: "2025-03-01T10:00:00Z"
  name: binding-%d
  namespace: "%s"
  resourceVersion: "2%d"
  uid: 0a1b2c3d-0000-4000-8000-000000000002
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: role-%d
subjects:
- kind: User
  apiGroup: rbac.authorization.k8s.io
  name: user-%d@example.com
- kind: ServiceAccount
  name: sa-%d
  namespace: "%s"
`

const syntheticPod = `apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: "2025-03-01T10:00:00Z"
  generateName: web-7d9f8b6c5d-
  labels:
    app: web
    pod-template-hash: 7d9f8b6c5d
  name: web-%d
  namespace: "%s"
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: ReplicaSet
    name: web-%d
    uid: 0a1b2c3d-0000-4000-8000-000000000003
  resourceVersion: "3%d"
  uid: 0a1b2c3d-0000-4000-8000-000000000004
spec:
  automountServiceAccountToken: false
  containers:
  - image: registry.example.com/web:1.2.%d
    imagePullPolicy: IfNotPresent
    name: web
    ports:
    - containerPort: 8080
      name: http
      protocol: TCP
    resources:
      limits:
        memory: 256Mi
      requests:
        cpu: 100m
        memory: 128Mi
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access
      readOnly: true
  nodeName: node-%d
  restartPolicy: Always
  serviceAccountName: sa-%d
status:
  phase: Running
  podIP: 10.0.0.1
  startTime: "2025-03-01T10:00:05Z"
  containerStatuses:
  - name: web
    ready: true
    restartCount: 0
    image: registry.example.com/web:1.2.%d
`
