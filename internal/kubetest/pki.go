package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// adminUser is the token user every cluster has; system:masters bypasses RBAC, so it can seed any fixture.
const adminUser = "admin"

// pki holds the files kube-apiserver needs, all generated in-process (no openssl).
type pki struct {
	caPEM        []byte // also what clients pin
	caFile       string
	certFile     string // serving certificate: SAN IP 127.0.0.1 and DNS localhost
	keyFile      string
	saPublicFile string // service-account token verification key
	saKeyFile    string // service-account token signing key
	saKey        *rsa.PrivateKey
}

// writePKI creates a CA, a serving certificate signed by it and an RSA service-account key pair under dir.
// ECDSA P-256 keeps the TLS keys fast to generate; the service-account key is RSA because that is what the
// apiserver's default signing algorithm (RS256) expects.
func writePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	// Backdating tolerates clock skew between this process and the children; a day outlives any test.
	notBefore := time.Now().Add(-time.Hour)
	notAfter := notBefore.Add(25 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kiem-kubetest-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return nil, fmt.Errorf("encode serving key: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate service-account key: %w", err)
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode service-account public key: %w", err)
	}

	p := &pki{
		caPEM:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		caFile:       filepath.Join(dir, "ca.crt"),
		certFile:     filepath.Join(dir, "apiserver.crt"),
		keyFile:      filepath.Join(dir, "apiserver.key"),
		saPublicFile: filepath.Join(dir, "sa.pub"),
		saKeyFile:    filepath.Join(dir, "sa.key"),
		saKey:        saKey,
	}
	files := []struct {
		path string
		data []byte
	}{
		{p.caFile, p.caPEM},
		{p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})},
		{p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKeyDER})},
		{p.saPublicFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})},
		{p.saKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", filepath.Base(f.path), err)
		}
	}
	return p, nil
}

// identity is one token-authenticated user.
type identity struct {
	user   string
	groups []string
	token  string
}

// newIdentities returns admin (system:masters) plus users, each with a fresh random token, sorted by name so
// the token file is deterministic apart from the tokens.
func newIdentities(users map[string][]string) ([]identity, error) {
	if _, ok := users[adminUser]; ok {
		return nil, fmt.Errorf("user %q is reserved (it is always present, in system:masters)", adminUser)
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	ids := []identity{{user: adminUser, groups: []string{"system:masters"}}}
	for _, u := range names {
		ids = append(ids, identity{user: u, groups: users[u]})
	}
	for i := range ids {
		// The token file is CSV with a quoted group list; reject what would need escaping rather than escape it.
		for _, s := range append([]string{ids[i].user}, ids[i].groups...) {
			if s == "" || strings.ContainsAny(s, ",\"\r\n") {
				return nil, fmt.Errorf("user %q: name or group %q is empty or holds a comma, quote or newline", ids[i].user, s)
			}
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate token: %w", err)
		}
		ids[i].token = hex.EncodeToString(b)
	}
	return ids, nil
}

// writeTokenFile writes kube-apiserver's --token-auth-file: token,user,uid,"group1,group2".
func writeTokenFile(path string, ids []identity) error {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s,%s,uid-%s", id.token, id.user, id.user)
		if len(id.groups) > 0 {
			fmt.Fprintf(&b, ",\"%s\"", strings.Join(id.groups, ","))
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for one token user that pins the cluster CA, readable by kubectl and
// client-go alike.
func writeKubeconfig(path, url string, caPEM []byte, id identity) error {
	cfg := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"kubetest": {Server: url, CertificateAuthorityData: caPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{id.user: {Token: id.token}},
		Contexts:       map[string]*clientcmdapi.Context{id.user: {Cluster: "kubetest", AuthInfo: id.user}},
		CurrentContext: id.user,
	}
	if err := clientcmd.WriteToFile(cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig for %s: %w", id.user, err)
	}
	return nil
}
