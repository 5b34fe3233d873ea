package indexer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/graph"
)

// TestLoadSecretKeepsNoData: a Secret read from a file keeps its type, labels and the ServiceAccount a token
// belongs to, and nothing of its data: not data, not stringData, not the last-applied-configuration annotation
// that kubectl fills with both.
func TestLoadSecretKeepsNoData(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.yaml")
	manifest := `apiVersion: v1
kind: Secret
metadata:
  name: deployer-token
  namespace: ci
  labels: {team: ci}
  annotations:
    kubernetes.io/service-account.name: deployer
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"token":"c2VjcmV0LXZhbHVl"}}'
type: kubernetes.io/service-account-token
data: {token: c2VjcmV0LXZhbHVl}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: ci}
stringData: {password: hunter2}
`
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, _, err := Load(context.Background(), []string{file}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Secrets) != 2 {
		t.Fatalf("loaded %d secrets, want 2", len(objs.Secrets))
	}
	s := objs.Secrets[0]
	if s.Name != "deployer-token" || s.Type != "kubernetes.io/service-account-token" || s.ServiceAccount != "deployer" ||
		s.Labels["team"] != "ci" || s.Origin != file+":1" {
		t.Fatalf("secret = %+v", s)
	}
	if len(s.Annotations) != 1 {
		t.Fatalf("annotations kept: %v", s.Annotations)
	}
	if objs.Secrets[1].Type != "Opaque" {
		t.Fatalf("a Secret without type is Opaque, got %q", objs.Secrets[1].Type)
	}
	data, err := graph.MarshalObject(&objs.Secrets[0])
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := graph.MarshalObject(&objs.Secrets[1])
	for _, leak := range []string{"c2VjcmV0LXZhbHVl", "hunter2", "last-applied"} {
		if strings.Contains(string(data)+string(data2), leak) {
			t.Fatalf("secret data %q kept: %s %s", leak, data, data2)
		}
	}
}
