// Package tlstest makes throwaway certificate authorities and certificates
// for tests, written as PEM files the way an operator would hand them in.
package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// CA is a self-signed certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	// File is the CA certificate's PEM file (what --ca and --client-ca name).
	File string
}

// Pair is an issued certificate and its key, as PEM files.
type Pair struct {
	Cert              *x509.Certificate
	CertFile, KeyFile string
	certPEM, keyPEM   []byte
}

// NewCA makes a CA named name and writes its certificate to dir/name.crt.
func NewCA(tb testing.TB, dir, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &CA{Cert: cert, key: key, File: filepath.Join(dir, name+".crt")}
	WriteFile(tb, ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

// Issue makes a certificate for cn, valid for serving and as a client, for
// 127.0.0.1, ::1 and localhost, and writes it to dir/cn.crt and dir/cn.key.
func (ca *CA) Issue(tb testing.TB, dir, cn string) Pair {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	p := Pair{
		Cert:     cert,
		CertFile: filepath.Join(dir, cn+".crt"),
		KeyFile:  filepath.Join(dir, cn+".key"),
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
	p.WriteTo(tb, p.CertFile, p.KeyFile)
	return p
}

// WriteTo writes the pair over certFile and keyFile (a rotation), each by
// rename so a reader never sees half a file, and dated a second after what
// was there: a real rotation is never within the coarse kernel clock tick
// two writes of a test may share, and the files are told apart by mtime.
func (p Pair) WriteTo(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	WriteFile(tb, certFile, p.certPEM)
	WriteFile(tb, keyFile, p.keyPEM)
}

// WriteCA writes the CA's certificate over file (a CA rotation).
func (ca *CA) WriteCA(tb testing.TB, file string) {
	tb.Helper()
	WriteFile(tb, file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}))
}

// WriteFile replaces file with b, by rename, dated at least a second after
// what it replaces.
func WriteFile(tb testing.TB, file string, b []byte) {
	tb.Helper()
	mod := time.Now()
	if fi, err := os.Stat(file); err == nil && !fi.ModTime().Before(mod.Add(-time.Second)) {
		mod = fi.ModTime().Add(time.Second)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(tmp, mod, mod); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		tb.Fatal(err)
	}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
