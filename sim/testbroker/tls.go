package testbroker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files for a TLS endpoint: the CA that signed it, its certificate and its
// private key. From NewTestCA they are the server's; from NewClientCert a client's.
type TLSFiles struct {
	CA    string // CA certificate
	Cert  string // certificate, signed by CA
	Key   string // Cert's private key
	CAKey string // CA's private key, set by NewTestCA for NewClientCert
}

// certValidity is how long test certificates are valid, from an hour ago (clock skew).
const certValidity = 7 * 24 * time.Hour

// NewTestCA creates a throwaway certificate authority (ECDSA P-256) and a server certificate
// it signs for hosts, written as PEM files in dir (a new temporary directory if dir is
// ""): ca.pem, ca-key.pem, server.pem and server-key.pem. Each host is an IP address or a
// DNS name; with no hosts the certificate is for 127.0.0.1 and "localhost".
func NewTestCA(t testing.TB, dir string, hosts ...string) TLSFiles {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "fleetsim test CA", Organization: []string{"fleetsim tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // signs leaf certificates only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	files := TLSFiles{
		CA:    writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER),
		CAKey: writeKey(t, filepath.Join(dir, "ca-key.pem"), caKey),
	}
	leaf := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	files.Cert, files.Key = sign(t, dir, "server", leaf, caCert, caKey)
	return files
}

// NewClientCert creates a client certificate with common name cn, signed by the CA of
// ca (from NewTestCA), for mutual TLS. The files are written in a new temporary directory;
// the result's CA is ca's.
func NewClientCert(t testing.TB, ca TLSFiles, cn string) TLSFiles {
	t.Helper()
	if ca.CAKey == "" {
		t.Fatal("NewClientCert needs the CA's key: pass the TLSFiles from NewTestCA")
	}
	caCert := readCert(t, ca.CA)
	keyPair, err := tls.LoadX509KeyPair(ca.CA, ca.CAKey)
	if err != nil {
		t.Fatalf("load CA key: %v", err)
	}
	caKey, ok := keyPair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("CA key %s is %T, want ECDSA", ca.CAKey, keyPair.PrivateKey)
	}
	leaf := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	files := TLSFiles{CA: ca.CA}
	files.Cert, files.Key = sign(t, t.TempDir(), "client", leaf, caCert, caKey)
	return files
}

// ClientConfig returns a TLS configuration for a client that trusts f.CA (and no other
// CA), without a client certificate.
func (f TLSFiles) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, f.CA))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// ClientConfigWithCert is ClientConfig that also presents f.Cert, for files made by
// NewClientCert.
func (f TLSFiles) ClientConfigWithCert(t testing.TB) *tls.Config {
	t.Helper()
	cfg := f.ClientConfig(t)
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatalf("load client certificate: %v", err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// sign completes tmpl as a leaf certificate with a new key, signs it with the CA and writes
// name.pem and name-key.pem in dir.
func sign(t testing.TB, dir, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (cert, key string) {
	t.Helper()
	k := newKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(certValidity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature // ECDSA keys sign; they do not encipher
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create %s certificate: %v", name, err)
	}
	return writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der),
		writeKey(t, filepath.Join(dir, name+"-key.pem"), k)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serial returns a random 128-bit serial number (RFC 5280 §4.1.2.2 allows up to 20 octets).
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeKey(t testing.TB, path string, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, path, "PRIVATE KEY", der)
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}
