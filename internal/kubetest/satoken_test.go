package kubetest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMintJWT checks the token's shape offline; TestKubeAuthE2E (cmd/kiem) has the apiserver accept it.
func TestMintJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(1_700_000_000, 0)
	tok, err := mintJWT(key, ServiceAccountToken{Namespace: "ns", Name: "sa", UID: "u-1", IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Iss, Sub string
		Aud      []string
		Iat, Exp int64
		K8s      struct {
			Namespace      string
			ServiceAccount struct{ Name, UID string }
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Iss != saIssuer || c.Sub != "system:serviceaccount:ns:sa" || len(c.Aud) != 1 || c.Aud[0] != saIssuer ||
		c.Iat != iat.Unix() || c.Exp != iat.Add(time.Hour).Unix() ||
		c.K8s.Namespace != "ns" || c.K8s.ServiceAccount.Name != "sa" || c.K8s.ServiceAccount.UID != "u-1" {
		t.Errorf("claims %+v", c)
	}
}
