package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// PokeBolt writes raw bytes into a closed store file, as a newer binary or a
// damaged disk would leave it, so tests can open real files that this binary
// did not write. Only schema.go's names are used.
func PokeBolt(path string, fn func(servers, settings, meta *bolt.Bucket) error) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		return fn(tx.Bucket(bucketServers), tx.Bucket(bucketSettings), tx.Bucket(bucketMeta))
	})
}

// MetaSchemaVersion is the meta key holding the schema version.
var MetaSchemaVersion = metaSchemaVersion

// U64 encodes v as the store does.
var U64 = u64

// SettingsKey is the settings bucket's only key.
var SettingsKey = settingsKey

// WriteV1File writes a store file the way a schema version 1 control plane
// did: plaintext server records and cluster secret, no secrets key.
func WriteV1File(path string, servers []*mcpmeshv1.Server, clusterSecret []byte) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, s := range servers {
			b, err := proto.Marshal(s)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketServers).Put([]byte(s.GetName()), b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaSchemaVersion, u64(1)); err != nil {
			return err
		}
		if err := meta.Put(metaRevision, u64(uint64(len(servers)))); err != nil {
			return err
		}
		return meta.Put(metaClusterSecret, clusterSecret)
	})
}
