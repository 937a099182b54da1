package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"google.golang.org/grpc/credentials"
)

// ServerFiles are a listener's PEM files: its certificate chain and key
// (--tls-cert, --tls-key) and, for mutual TLS, the CA bundle client
// certificates must chain to (--client-ca).
type ServerFiles struct {
	Cert, Key, ClientCA string
}

// Enabled reports whether any TLS file was named.
func (f ServerFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// ClientFiles are a client's PEM files: the CA bundle the server's
// certificate must chain to (--ca; the system roots if empty) and, for
// mutual TLS, the client's own certificate chain and key (--client-cert,
// --client-key). ServerName, if set, is the name the server's certificate
// must carry instead of the dialled host.
type ClientFiles struct {
	CA, Cert, Key string
	ServerName    string
}

// Enabled reports whether the client speaks TLS: any file was named.
func (f ClientFiles) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Server returns the TLS config of a listener serving f, advertising
// nextProtos in ALPN. The certificate and the client CA bundle are re-read
// on the first handshake after either file changes. With f.ClientCA set,
// every client must present a certificate that chains to it.
func Server(f ServerFiles, nextProtos []string, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if f.Cert == "" && f.Key == "" && f.ClientCA != "" {
		return nil, errors.New("--client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together: set both")
	}
	cert, err := newWatched("TLS certificate", log, func() (*tls.Certificate, error) { return loadPair(f.Cert, f.Key, "--tls-cert", "--tls-key") }, f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	var clientCA *watched[*x509.CertPool]
	if f.ClientCA != "" {
		clientCA, err = newWatched("client CA", log, func() (*x509.CertPool, error) { return loadPool(f.ClientCA, "--client-ca") }, f.ClientCA)
		if err != nil {
			return nil, err
		}
	}
	protos := append([]string(nil), nextProtos...)
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: protos}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			NextProtos:   protos,
			Certificates: []tls.Certificate{*cert.get()},
		}
		if clientCA != nil {
			c.ClientCAs = clientCA.get()
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base, nil
}

// Client returns a function that builds a client's TLS config from f as
// the files are now: the CA bundle and the client certificate are re-read
// after they change, so each new connection verifies against the current CA.
func Client(f ClientFiles, log *slog.Logger) (func() *tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("--client-cert and --client-key go together: set both")
	}
	var roots *watched[*x509.CertPool]
	var err error
	if f.CA != "" {
		roots, err = newWatched("CA", log, func() (*x509.CertPool, error) { return loadPool(f.CA, "--ca") }, f.CA)
		if err != nil {
			return nil, err
		}
	}
	var cert *watched[*tls.Certificate]
	if f.Cert != "" {
		cert, err = newWatched("client certificate", log, func() (*tls.Certificate, error) {
			return loadPair(f.Cert, f.Key, "--client-cert", "--client-key")
		}, f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
	}
	return func() *tls.Config {
		c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
		if roots != nil {
			c.RootCAs = roots.get()
		}
		if cert != nil {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.get(), nil }
		}
		return c
	}, nil
}

// GRPCClient returns gRPC transport credentials that verify the server
// against f, taking a fresh config (current CA, current client
// certificate) for every connection.
func GRPCClient(f ClientFiles, log *slog.Logger) (credentials.TransportCredentials, error) {
	cfg, err := Client(f, log)
	if err != nil {
		return nil, err
	}
	return &reloadingCreds{config: cfg, info: credentials.NewTLS(cfg()).Info()}, nil
}

// reloadingCreds is credentials.NewTLS over a config taken anew per
// handshake: NewTLS alone freezes the CA pool it was given.
type reloadingCreds struct {
	config func() *tls.Config
	info   credentials.ProtocolInfo
}

func (r *reloadingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(r.config()).ClientHandshake(ctx, authority, conn)
}

func (r *reloadingCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsconfig: client credentials cannot serve")
}

func (r *reloadingCreds) Info() credentials.ProtocolInfo { return r.info }

func (r *reloadingCreds) Clone() credentials.TransportCredentials {
	c := *r
	return &c
}

// OverrideServerName is deprecated in gRPC; ClientFiles.ServerName does it.
func (r *reloadingCreds) OverrideServerName(string) error {
	return errors.New("tlsconfig: set ClientFiles.ServerName instead")
}

func loadPair(certFile, keyFile, certFlag, keyFlag string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s %s with %s %s: %w", certFlag, certFile, keyFlag, keyFile, err)
	}
	return &c, nil
}

func loadPool(file, flag string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle %s: %w", flag, err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read CA bundle %s %s: no PEM certificate in it", flag, file)
	}
	return p, nil
}

// GRPCServer returns gRPC transport credentials serving cfg (from Server).
// gRPC adds h2 to the ALPN protocols of every per-client config.
func GRPCServer(cfg *tls.Config) credentials.TransportCredentials { return credentials.NewTLS(cfg) }
