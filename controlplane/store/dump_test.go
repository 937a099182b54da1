package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
)

// A restore into bbolt is sealed like any write: the file holds no secret
// in clear and a reopened store reads back exactly what was restored; a
// dump carried bbolt -> memory -> bbolt arrives unchanged.
func TestBoltRestoreIsSealedAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	src, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	storetest.Populate(t, src)
	d, err := src.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}

	mem := store.NewMemory()
	defer mem.Close()
	if _, err := mem.Restore(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	viaMem, err := mem.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), store.FileName)
	dst, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := dst.Restore(ctx, viaMem, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{[]byte("secret-a"), []byte("secret-b"), d.ClusterSecret, d.PreviousSecrets[0].Secret} {
		if bytes.Contains(raw, secret) {
			t.Fatalf("the restored file holds a secret in clear: %q", secret)
		}
	}
	again, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	back, err := again.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := storetest.SameContent(d, back); diff != "" {
		t.Fatalf("bbolt -> memory -> bbolt changed the %s", diff)
	}
	if back.Revision != rev {
		t.Fatalf("reopened revision %d, restored at %d", back.Revision, rev)
	}
}
