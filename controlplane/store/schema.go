package store

import "encoding/binary"

// Bucket and key layout of the bbolt file. Nothing outside this file invents
// bucket or meta key names.
var (
	// bucketServers: key server name, value protobuf mcpmeshv1.Server.
	bucketServers = []byte("servers")
	// bucketSettings: key settingsKey, value protobuf mcpmeshv1.Settings.
	bucketSettings = []byte("settings")
	// bucketHealth: key "<dataplane>\x00<server>", value protobuf mcpmeshv1.BackendHealth.
	bucketHealth = []byte("health")
	// bucketEvents: key big-endian uint64 sequence, value protobuf
	// mcpmeshv1.BackendHealth; the last MaxEvents are kept.
	bucketEvents = []byte("events")
	// bucketTokens: key token id, value protobuf mcpmeshv1.StoredToken (the
	// SHA-256 of the secret, never the secret).
	bucketTokens = []byte("tokens")
	// bucketClientKeys: key client key id, value protobuf
	// mcpmeshv1.StoredClientKey (the SHA-256 of the secret, never the secret).
	bucketClientKeys = []byte("client_keys")
	// bucketOAuthGrants: key server name, value protobuf
	// mcpmeshv1.StoredOAuthGrant (tokens and client secret); sealed.
	bucketOAuthGrants = []byte("oauth_grants")
	// bucketOAuthPending: key OAuth state parameter, value protobuf
	// mcpmeshv1.StoredOAuthPending (PKCE verifier, client); sealed.
	bucketOAuthPending = []byte("oauth_pending")
	// bucketMeta: the keys below.
	bucketMeta = []byte("meta")

	allBuckets = [][]byte{bucketServers, bucketSettings, bucketHealth, bucketEvents, bucketTokens, bucketClientKeys, bucketOAuthGrants, bucketOAuthPending, bucketMeta}
)

var (
	settingsKey = []byte("cluster")

	// metaRevision: big-endian uint64, the config revision.
	metaRevision = []byte("revision")
	// metaSchemaVersion: big-endian uint64, schemaVersion below.
	metaSchemaVersion = []byte("schema_version")
	// metaClusterSecret: 32 random bytes, created on first open; sealed.
	metaClusterSecret = []byte("cluster_secret")
	// metaPreviousSecrets: protobuf mcpmeshv1.StoredSecrets, the cluster
	// secrets rotations replaced, with their expiry; sealed. Absent until
	// the first rotation.
	metaPreviousSecrets = []byte("previous_secrets")
	// metaSecretsKeyID: keyID of the KeyFileName key that sealed the values.
	metaSecretsKeyID = []byte("secrets_key_id")
)

// schemaVersion is bumped with a migration whenever the layout changes.
//
//	1: plaintext values.
//	2: server values and the cluster secret are sealed (seal.go) with the
//	   key in KeyFileName; opening a version 1 file seals them
//	   (migrateSealSecrets) and compacts the file, so no plaintext page
//	   is left behind.
//
// Adding a bucket is not such a change: an older binary ignores the tokens
// bucket and accepts only the bootstrap admin token, which loses nothing.
// Nor is meta/previous_secrets: an older binary serves the current secret
// alone, so only the grace of a rotation is cut short.
// bucket and accepts only the bootstrap admin token, which loses nothing; it
// ignores the client_keys bucket too, so its data planes get no keys.
const schemaVersion uint64 = 2

// Bucket values that are sealed; everything else is plaintext protobuf.
//
//	servers/*           mcpmeshv1.Server (env, headers, URLs, args)
//	meta/cluster_secret the cluster secret
//	meta/previous_secrets the secrets rotations replaced
//	oauth_grants/*      mcpmeshv1.StoredOAuthGrant (tokens, client secret)
//	oauth_pending/*     mcpmeshv1.StoredOAuthPending (PKCE verifier, client secret)
//
// The oauth buckets are new buckets, not a layout change: an older binary
// ignores them (its backends stay unauthorized).

// clusterSecretLen is the size of the cluster secret in bytes.
const clusterSecretLen = 32

func healthKey(dataplaneID, server string) []byte {
	return []byte(dataplaneID + "\x00" + server)
}

func healthPrefix(dataplaneID string) []byte {
	return []byte(dataplaneID + "\x00")
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func fromU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
