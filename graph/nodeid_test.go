package graph

import (
	"errors"
	"testing"
)

func TestNodeIDRoundTrip(t *testing.T) {
	tests := []struct {
		cluster string
		ref     ObjectRef
	}{
		{"default", ObjectRef{Kind: KindClusterRole, Name: "system:controller:job-controller"}},
		{"prod/eu", ObjectRef{Kind: KindUser, Name: "https://accounts.google.com#1234/ab%2F"}},
		{"", ObjectRef{Kind: KindUser, Name: "arn:aws:iam::123456789012:role/dev"}},
		{"c", ObjectRef{Kind: KindGroup, Name: "a/b c@d"}},
		{"c", ObjectRef{Kind: KindServiceAccount, Namespace: "kube-system", Name: "default"}},
		{"c", ObjectRef{Kind: KindRoleBinding, Namespace: "ns", Name: "x"}},
		{"c", ObjectRef{Kind: KindPod, Namespace: "ns", Name: "p-1"}},
		{"c", ObjectRef{Kind: KindNode, Name: "node-1"}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		id := NodeID(tt.cluster, tt.ref)
		if seen[id] {
			t.Errorf("%v: ID %q repeats", tt.ref, id)
		}
		seen[id] = true
		cluster, ref, err := ParseNodeID(id)
		if err != nil || cluster != tt.cluster || ref != tt.ref {
			t.Errorf("ParseNodeID(NodeID(%q, %v)) = %q, %v, %v", tt.cluster, tt.ref, cluster, ref, err)
		}
	}
}

func TestParseNodeIDRefusesForeignIDs(t *testing.T) {
	for _, id := range []string{
		"", "not-base64!", "Um9sZS9ucy9uYW1l", // "Role/ns/name"
		NodeID("c", ObjectRef{Kind: "Deployment", Namespace: "ns", Name: "x"}),
		NodeID("c", ObjectRef{Kind: KindRole, Name: "no-namespace"}),
		NodeID("c", ObjectRef{Kind: KindClusterRole, Namespace: "ns", Name: "x"}),
		NodeID("c", ObjectRef{Kind: KindUser}),
	} {
		if _, _, err := ParseNodeID(id); !errors.Is(err, ErrBadNodeID) {
			t.Errorf("ParseNodeID(%q) = %v, want ErrBadNodeID", id, err)
		}
	}
}
