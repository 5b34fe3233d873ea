package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/kiem-io/kiem/gql/auth"
)

// newKubeAuthenticator returns the authenticator of --auth=kubernetes: TokenReview and SubjectAccessReview
// with cfg's credentials, which therefore need create on tokenreviews and subjectaccessreviews. With
// audiences, a token is accepted only if it was issued for one of them (TokenRequest's audiences, a projected
// token's audience); without, the apiserver's own audiences apply.
func newKubeAuthenticator(cfg *rest.Config, audiences ...string) (*auth.Delegate, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kiem-auth"
	// Reviews sit in the path of every uncached request: client-go's default 5 QPS would queue a page load of
	// several users, and a hung apiserver must answer 503, not hang the request.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = kubeReviewTimeout
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes auth client: %w", err)
	}
	return auth.NewDelegate(auth.DelegateOptions{
		Tokens: kubeTokenReviewer{client: cs.AuthenticationV1().TokenReviews(), audiences: audiences},
		Access: kubeAccessReviewer{client: cs.AuthorizationV1().SubjectAccessReviews()},
	})
}

// kubeReviewTimeout bounds one TokenReview or SubjectAccessReview.
const kubeReviewTimeout = 10 * time.Second

var (
	_ auth.TokenReviewer  = kubeTokenReviewer{}
	_ auth.AccessReviewer = kubeAccessReviewer{}
)

// kubeTokenReviewer authenticates tokens with the TokenReview API.
type kubeTokenReviewer struct {
	client    authenticationv1client.TokenReviewInterface
	audiences []string
}

// ReviewToken implements auth.TokenReviewer.
func (r kubeTokenReviewer) ReviewToken(ctx context.Context, token string) (auth.Identity, error) {
	tr, err := r.client.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: r.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return auth.Identity{}, fmt.Errorf("create tokenreview: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		// st.Error says why (expired, unknown key, deleted account); it never repeats the token.
		if st.Error != "" {
			return auth.Identity{}, fmt.Errorf("%w: %s", auth.ErrUnauthenticated, st.Error)
		}
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	// An authenticator that ignores audiences answers without them; accepting that would let a token meant
	// for another service in.
	if len(r.audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(r.audiences, a) }) {
		return auth.Identity{}, fmt.Errorf("%w: token is for audiences %q, want one of %q", auth.ErrUnauthenticated, st.Audiences, r.audiences)
	}
	id := auth.Identity{User: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		id.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			id.Extra[k] = v
		}
	}
	return id, nil
}

// kubeAccessReviewer authorizes with the SubjectAccessReview API against kiem's virtual resource.
type kubeAccessReviewer struct {
	client authorizationv1client.SubjectAccessReviewInterface
}

// Allowed implements auth.AccessReviewer. A review that the authorizer could only partly evaluate
// (status.evaluationError) counts as its verdict: the apiserver would decide a real request the same way.
func (r kubeAccessReviewer) Allowed(ctx context.Context, id auth.Identity, verb string) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   id.User,
		UID:    id.UID,
		Groups: id.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: auth.VirtualGroup, Resource: auth.VirtualResource, Verb: verb,
		},
	}}
	if len(id.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(id.Extra))
		for k, v := range id.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	res, err := r.client.Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("create subjectaccessreview: %w", err)
	}
	return res.Status.Allowed, nil
}
