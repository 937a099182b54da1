// Package authtoken handles the bearer tokens of the control plane's gRPC
// API: the bootstrap admin.token (created at first start), reading a token
// file, sending a token, and the spelling of the roles. Which role may call
// what is decided in controlplane/access.
package authtoken

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// FileName is the token file's name inside the control plane's data dir.
const FileName = "admin.token"

// EnvTokenFile names the environment variable that points at the token file.
const EnvTokenFile = "MCPMESH_TOKEN_FILE"

// LoadOrCreate returns the token stored at path, creating the file (mode 0600)
// with a fresh random token if it does not exist.
func LoadOrCreate(path string) (string, error) {
	tok, err := Read(path)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok = hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create admin token dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create admin token %s: %w", path, err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write admin token %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("sync admin token %s: %w", path, err)
	}
	return tok, f.Close()
}

// Read returns the token stored in the file at path.
func Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read admin token: %s is empty", path)
	}
	return tok, nil
}

// Credentials returns per-RPC credentials that send the token as a bearer
// token. They work over plaintext connections (the control plane listens on
// loopback by default; put TLS in front of it to expose it).
func Credentials(token string) credentials.PerRPCCredentials { return bearer(token) }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// AuthFunc returns a go-grpc-middleware auth function accepting only token
// (for test servers; the control plane uses controlplane/access).
func AuthFunc(token string) auth.AuthFunc {
	want := []byte(token)
	return func(ctx context.Context) (context.Context, error) {
		got, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			return nil, status.Error(codes.Unauthenticated, "invalid admin token")
		}
		return ctx, nil
	}
}
