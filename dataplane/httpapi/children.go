package httpapi

import "sync"

// children keeps the metrics of a vector by their label values, so that the
// request path finds a counter with one map read instead of hashing its
// labels into the vector's own map on every request (WithLabelValues was a
// few percent of the data plane's CPU per call). Every label value used is
// bounded already (route patterns, known methods, status codes, server
// names of the config), so the cache is too; children of a server that left
// the config are forgotten here and deleted from the vector (SetServers).
type children[K comparable, M any] struct {
	m   sync.Map // K -> M
	get func(K) M
}

func (c *children[K, M]) with(k K) M {
	if v, ok := c.m.Load(k); ok {
		return v.(M)
	}
	v, _ := c.m.LoadOrStore(k, c.get(k))
	return v.(M)
}

type httpKey struct {
	route, method string
	code          int
}

type mcpKey struct{ method, status string }

// forget drops the cached children whose key drop matches.
func (c *children[K, M]) forget(drop func(K) bool) {
	c.m.Range(func(k, _ any) bool {
		if drop(k.(K)) {
			c.m.Delete(k)
		}
		return true
	})
}

func newChildren[K comparable, M any](get func(K) M) *children[K, M] {
	return &children[K, M]{get: get}
}
