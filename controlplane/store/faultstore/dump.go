package faultstore

import (
	"context"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
)

// Dump implements store.Store: it reads what State reads, so the same
// corruption fails it.
func (f *Fault) Dump(ctx context.Context) (*store.Dump, error) {
	const op = "dump store"
	if err := f.before(op, false); err != nil {
		return nil, err
	}
	d, err := f.inner.Dump(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.stateCorrupt(op, &d.State); err != nil {
		return nil, err
	}
	return d, nil
}

// Restore implements store.Store. It replaces every server, so a restore
// clears the corruption faults of servers and settings.
func (f *Fault) Restore(ctx context.Context, d *store.Dump, force bool) (uint64, error) {
	if err := f.before("restore store", true); err != nil {
		return 0, err
	}
	rev, err := f.inner.Restore(ctx, d, force)
	if err == nil {
		f.mu.Lock()
		f.corruptServers, f.corruptSettings = map[string]bool{}, false
		f.mu.Unlock()
	}
	return rev, err
}
