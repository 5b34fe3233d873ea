package graph

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// nodeIDVersion prefixes every ID so that the encoding can change without old IDs being misread.
const nodeIDVersion = "k1"

// ErrBadNodeID is returned for an ID that NodeID did not make.
var ErrBadNodeID = errors.New("not a kiem node ID")

// NodeID returns the stable, opaque ID of the node ref of cluster: clients keep and pass it back, never parse it.
// Each part is path-escaped before the parts are joined, so names holding '/', ':' or '@' (OIDC URLs, ARNs, e-mail
// addresses) survive, and the whole is base64url so that it travels in URLs and JSON untouched.
func NodeID(cluster string, ref ObjectRef) string {
	raw := strings.Join([]string{nodeIDVersion, url.PathEscape(cluster), url.PathEscape(string(ref.Kind)),
		url.PathEscape(ref.Namespace), url.PathEscape(ref.Name)}, "/")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseNodeID returns the cluster and node of an ID made by NodeID.
func ParseNodeID(id string) (cluster string, ref ObjectRef, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", ObjectRef{}, ErrBadNodeID
	}
	parts := strings.Split(string(raw), "/")
	if len(parts) != 5 || parts[0] != nodeIDVersion {
		return "", ObjectRef{}, ErrBadNodeID
	}
	var un [4]string
	for i, p := range parts[1:] {
		if un[i], err = url.PathUnescape(p); err != nil {
			return "", ObjectRef{}, ErrBadNodeID
		}
	}
	ref = ObjectRef{Kind: Kind(un[1]), Namespace: un[2], Name: un[3]}
	if !ref.Kind.valid() || ref.Name == "" || (ref.Namespace != "") != ref.Kind.Namespaced() {
		return "", ObjectRef{}, fmt.Errorf("%w: kind %q, namespace %q, name %q", ErrBadNodeID, ref.Kind, ref.Namespace, ref.Name)
	}
	return un[0], ref, nil
}

// kinds lists every node kind, in the order answers list them.
var kinds = [...]Kind{KindUser, KindGroup, KindServiceAccount, KindRole, KindClusterRole, KindRoleBinding,
	KindClusterRoleBinding, KindNamespace, KindPod, KindNode, KindSecret}

// AllKinds returns every node kind, in the order answers list them.
func AllKinds() []Kind { return kinds[:] }

func (k Kind) valid() bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Namespaced reports whether nodes of kind k live in a namespace.
func (k Kind) Namespaced() bool {
	switch k {
	case KindServiceAccount, KindRole, KindRoleBinding, KindPod, KindSecret:
		return true
	}
	return false
}
