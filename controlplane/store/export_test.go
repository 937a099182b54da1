package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
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
