package indexer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kiem-io/kiem/graph"
)

// TestLiveSecretMetadata: Secret metadata is indexed only when enabled, and never its data, nor an annotation
// that could hold it.
func TestLiveSecretMetadata(t *testing.T) {
	secret := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "builder-token", Namespace: "team", ResourceVersion: "5",
				Annotations: map[string]string{
					corev1.ServiceAccountNameKey:                       "builder",
					"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"token":"c2VjcmV0"}}`,
				}},
			Type:       corev1.SecretTypeServiceAccountToken,
			Data:       map[string][]byte{"token": []byte("secret")},
			StringData: map[string]string{"password": "hunter2"},
		}
	}
	ref := graph.ObjectRef{Kind: graph.KindSecret, Namespace: "team", Name: "builder-token"}
	for _, enabled := range []bool{false, true} {
		cs := fake.NewClientset(apiNamespace("team"), secret())
		g := newFakeGraph(t)
		startLive(t, cs, g, func(o *LiveOptions) { o.Secrets = enabled })
		o := g.object(ref)
		if !enabled {
			if o != nil {
				t.Fatalf("secret indexed while disabled: %+v", o)
			}
			continue
		}
		s, ok := o.(*graph.Secret)
		if !ok {
			t.Fatalf("secret not indexed while enabled: %+v", o)
		}
		if s.Type != string(corev1.SecretTypeServiceAccountToken) || s.ServiceAccount != "builder" {
			t.Fatalf("secret = %+v, want its type and ServiceAccount", s)
		}
		if _, leaked := s.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; leaked || len(s.Annotations) != 1 {
			t.Fatalf("secret annotations = %v, want only the ServiceAccount name", s.Annotations)
		}
		enc, err := graph.MarshalObject(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range []string{"c2VjcmV0", "secret\"", "hunter2"} {
			if strings.Contains(string(enc), data) {
				t.Fatalf("encoded secret %s holds data %q", enc, data)
			}
		}
	}
	// The transform itself drops data before the informer caches the object.
	out, err := slim(secret())
	if err != nil {
		t.Fatal(err)
	}
	if s := out.(*corev1.Secret); s.Data != nil || s.StringData != nil || len(s.Annotations) != 1 {
		t.Fatalf("slim(secret) = %+v, want no data and one annotation", s)
	}
}
