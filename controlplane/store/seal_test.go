package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// secretServers carry one secret of each kind; secretValues lists them.
func secretServers() []*mcpmeshv1.Server {
	return []*mcpmeshv1.Server{
		{Name: "stdio-one", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, CreateRevision: 1, ModRevision: 1,
			Stdio: &mcpmeshv1.StdioConfig{Command: "run", Args: []string{"--token", "arg-secret-4711"}, SecretArgs: []uint32{1},
				Env: map[string]string{"API_KEY": "env-secret-4711"}}},
		{Name: "web-two", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, CreateRevision: 2, ModRevision: 2,
			Http: &mcpmeshv1.HttpConfig{Url: "https://alice:url-secret-4711@example.com/mcp?api_key=query-secret-4711",
				Headers: map[string]string{"Authorization": "Bearer header-secret-4711"}},
			Endpoints: []string{"https://ep-secret-4711@replica.example.com/mcp"}},
	}
}

var secretValues = []string{"arg-secret-4711", "env-secret-4711", "url-secret-4711", "query-secret-4711", "header-secret-4711", "ep-secret-4711"}

// checkNoPlaintext reads the store file raw and fails on any secret in it.
func checkNoPlaintext(t *testing.T, path string, clusterSecret []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secretValues {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s holds %q in plaintext", path, s)
		}
	}
	if len(clusterSecret) == 0 || bytes.Contains(raw, clusterSecret) {
		t.Errorf("%s holds the cluster secret in plaintext (or it is empty)", path)
	}
	if !bytes.Contains(raw, []byte("stdio-one")) {
		t.Errorf("%s lacks the server name: is this the right file?", path)
	}
}

// TestSecretsEncryptedAtRest: secrets written through the store are not in
// the file, the key file is 0600, and a reopened store reads them back.
func TestSecretsEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range secretServers() {
		if _, err := s.CreateServer(ctx, srv); err != nil {
			t.Fatal(err)
		}
	}
	// An update leaves the old version in a freed page: sealed as well.
	up := secretServers()[0]
	up.Description = "updated"
	if _, err := s.UpdateServer(ctx, up, 0); err != nil {
		t.Fatal(err)
	}
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, path, st.ClusterSecret)
	fi, err := os.Stat(filepath.Join(dir, store.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}

	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _, err := s.ListServers(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("reopened list = %v, %v", got, err)
	}
	if got[0].GetStdio().GetEnv()["API_KEY"] != "env-secret-4711" || got[1].GetHttp().GetHeaders()["Authorization"] != "Bearer header-secret-4711" ||
		got[1].GetHttp().GetUrl() != secretServers()[1].GetHttp().GetUrl() || got[0].GetDescription() != "updated" {
		t.Errorf("reopened servers differ: %v", got)
	}
	st2, err := s.State(ctx)
	if err != nil || !bytes.Equal(st2.ClusterSecret, st.ClusterSecret) {
		t.Errorf("cluster secret after reopen = %x, %v; want %x", st2.ClusterSecret, err, st.ClusterSecret)
	}
}

// TestPlaintextStoreMigrated: a schema version 1 file (plaintext records,
// no key) still loads, and after the open its secrets are sealed and the
// freed plaintext pages are gone.
func TestPlaintextStoreMigrated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	secret := []byte("cluster-secret-0123456789abcdef!")
	if err := store.WriteV1File(path, secretServers(), secret); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); !bytes.Contains(raw, []byte("env-secret-4711")) {
		t.Fatal("the version 1 file should hold plaintext")
	}
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.ListServers(ctx)
	if err != nil || rev != 2 || len(got) != 2 || !proto.Equal(got[0], secretServers()[0]) || !proto.Equal(got[1], secretServers()[1]) {
		t.Fatalf("migrated list = %v at %d, %v", got, rev, err)
	}
	st, err := s.State(ctx)
	if err != nil || !bytes.Equal(st.ClusterSecret, secret) {
		t.Fatalf("migrated cluster secret = %q, %v", st.ClusterSecret, err)
	}
	// Writes after the migration work on the reopened (compacted) file.
	if _, err := s.CreateServer(ctx, &mcpmeshv1.Server{Name: "later", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, path, secret)
	// Right after a migration, with no write to reuse the freed pages, the
	// plaintext is gone too (without the compaction it is not).
	path2 := filepath.Join(t.TempDir(), store.FileName)
	if err := store.WriteV1File(path2, secretServers(), secret); err != nil {
		t.Fatal(err)
	}
	s2, err := store.OpenBolt(path2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, path2, secret)
	if err := store.PokeBolt(path, func(_, _, meta *bolt.Bucket) error {
		if v := meta.Get(store.MetaSchemaVersion); !bytes.Equal(v, store.U64(store.SchemaVersion)) {
			t.Errorf("schema version after migration = %x", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _, err := s.ListServers(ctx); err != nil || len(got) != 3 {
		t.Fatalf("second open: %v, %v", got, err)
	}
}

// TestSecretsKeyChecked: a sealed store refuses to open with a missing or
// another key instead of creating a new one or serving garbage.
func TestSecretsKeyChecked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	keyPath := filepath.Join(dir, store.KeyFileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(context.Background(), secretServers()[0]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	key, _ := os.ReadFile(keyPath)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(path); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("open without the key: %v", err)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new key was created for a sealed store")
	}
	if err := os.WriteFile(keyPath, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(path); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Fatalf("open with another key: %v", err)
	}
	if err := os.WriteFile(keyPath, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(path); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("open with a malformed key: %v", err)
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatalf("open with the right key again: %v", err)
	}
	s.Close()
}

// TestRotatedSecretsSealedAndKept: the secret a rotation replaced is kept
// sealed (neither it nor the new one is in the file in plaintext) and, with
// its expiry, survives a reopen.
func TestRotatedSecretsSealedAndKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, secretServers()[0]); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := s.RotateClusterSecret(ctx, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, path, st.ClusterSecret)
	checkNoPlaintext(t, path, st.PreviousSecrets[0].Secret)

	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.ClusterSecret, st.ClusterSecret) || len(got.PreviousSecrets) != 1 ||
		!bytes.Equal(got.PreviousSecrets[0].Secret, st.PreviousSecrets[0].Secret) || !got.PreviousSecrets[0].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("after reopen: previous %+v", got.PreviousSecrets)
	}
}
