package kubetest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// saIssuer is the cluster's --service-account-issuer; with no --api-audiences it is also the audience the
// apiserver accepts.
const saIssuer = "https://kubernetes.default.svc.cluster.local"

// ServiceAccountToken describes a service-account token for MintServiceAccountToken: the claims of a token the
// TokenRequest API would issue, but with any expiry, including one in the past, which TokenRequest refuses.
type ServiceAccountToken struct {
	Namespace, Name string
	// UID must be the ServiceAccount's UID: the apiserver refuses a token whose account was replaced.
	UID string
	// Audiences default to the issuer, the apiserver's own audience.
	Audiences []string
	// IssuedAt defaults to now; Expiry to an hour after IssuedAt.
	IssuedAt, Expiry time.Time
}

// MintServiceAccountToken signs a token with the cluster's service-account signing key, as the apiserver
// signs TokenRequest tokens (RS256, key ID from the public key, bound-token claims). It calls tb.Fatal if
// signing fails.
func (c *Cluster) MintServiceAccountToken(tok ServiceAccountToken) string {
	c.tb.Helper()
	s, err := mintJWT(c.pki.saKey, tok)
	if err != nil {
		c.tb.Fatalf("kubetest: mint service-account token: %v", err)
	}
	return s
}

func mintJWT(key *rsa.PrivateKey, tok ServiceAccountToken) (string, error) {
	if tok.IssuedAt.IsZero() {
		tok.IssuedAt = time.Now()
	}
	if tok.Expiry.IsZero() {
		tok.Expiry = tok.IssuedAt.Add(time.Hour)
	}
	if len(tok.Audiences) == 0 {
		tok.Audiences = []string{saIssuer}
	}
	// The apiserver names keys by the unpadded base64url SHA-256 of the PKIX public key; a matching kid lets
	// it pick the key instead of trying each.
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	kid := sha256.Sum256(pub)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("generate jti: %w", err)
	}
	type ref struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	}
	header := map[string]string{"alg": "RS256", "typ": "JWT", "kid": base64.RawURLEncoding.EncodeToString(kid[:])}
	claims := map[string]any{
		"iss": saIssuer,
		"sub": "system:serviceaccount:" + tok.Namespace + ":" + tok.Name,
		"aud": tok.Audiences,
		"iat": tok.IssuedAt.Unix(),
		"nbf": tok.IssuedAt.Unix(),
		"exp": tok.Expiry.Unix(),
		"jti": hex.EncodeToString(jti),
		"kubernetes.io": map[string]any{
			"namespace":      tok.Namespace,
			"serviceaccount": ref{Name: tok.Name, UID: tok.UID},
		},
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cl, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(cl)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
