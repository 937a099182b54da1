package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/etcdtest"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
)

// bbolt -> etcd -> bbolt: a dump carried through etcd arrives unchanged; a
// restore read through another replica sees the same; a restore larger than
// etcd's per-transaction limit fails naming the flag to raise, and changes
// nothing.
func TestEtcdRestoreBoltAndBack(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	storetest.Populate(t, bolt)
	d, err := bolt.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}

	a := openEtcd(t, c, "/restore", key)
	b := openEtcd(t, c, "/restore", key) // another replica
	if _, err := a.Restore(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	viaEtcd, err := b.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := storetest.SameContent(d, viaEtcd); diff != "" {
		t.Fatalf("bbolt -> etcd changed the %s", diff)
	}
	back, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if _, err := back.Restore(ctx, viaEtcd, false); err != nil {
		t.Fatal(err)
	}
	final, err := back.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := storetest.SameContent(d, final); diff != "" {
		t.Fatalf("bbolt -> etcd -> bbolt changed the %s", diff)
	}

	big := *viaEtcd
	big.Servers = nil
	for i := range 200 {
		big.Servers = append(big.Servers, storetest.Server(fmt.Sprintf("s%03d", i)))
	}
	_, err = a.Restore(ctx, &big, true)
	if err == nil || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("restore of 200 servers into etcd's default limit: err = %v, want one naming --max-txn-ops", err)
	}
	if after, _ := b.Dump(ctx); storetest.SameContent(viaEtcd, after) != "" || after.Revision != viaEtcd.Revision {
		t.Fatal("the refused restore changed the store")
	}
}
