package store

import (
	"context"
	"sync"
)

// watchers is the subscriber registry shared by both implementations. It is
// notified only after a transaction has committed, never from inside one.
type watchers struct {
	mu   sync.Mutex
	subs map[chan uint64]struct{}
}

func (w *watchers) watch(ctx context.Context) <-chan uint64 {
	ch := make(chan uint64, 1)
	w.mu.Lock()
	if w.subs == nil {
		w.subs = make(map[chan uint64]struct{})
	}
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.subs[ch]; ok {
			delete(w.subs, ch)
			close(ch)
		}
	})
	return ch
}

// notify hands rev to every subscriber, replacing an unread older revision so
// that readers always see the newest one.
func (w *watchers) notify(rev uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case <-ch:
		default:
		}
		ch <- rev // cannot block: the slot was just emptied and only we send, under mu
	}
}

// closeAll ends every subscription (the store is closing).
func (w *watchers) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		delete(w.subs, ch)
		close(ch)
	}
}
