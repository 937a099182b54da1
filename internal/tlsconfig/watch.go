package tlsconfig

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// stamp is what tells a changed file from an unchanged one without reading
// it. Kubernetes swaps a mounted Secret's files through a symlink, which
// os.Stat follows, so that shows as a change too.
type stamp struct {
	mod  time.Time
	size int64
}

func stampsOf(paths []string) ([]stamp, error) {
	out := make([]stamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

// watched is a value loaded from files and loaded again, on the next get,
// once any of them changed. A load that fails (a pair caught half-written,
// say) keeps the last good value and is tried again when the files change
// again, so a rotation in progress never breaks handshakes.
type watched[T any] struct {
	what  string // "TLS certificate", for the log
	paths []string
	load  func() (T, error)
	log   *slog.Logger

	mu     sync.Mutex
	good   []stamp // the files the value was loaded from
	failed []stamp // the files the last failed load saw
	// statFailing is set while a file cannot be stat'ed (mid-swap, say).
	statFailing bool
	val         T
}

func newWatched[T any](what string, log *slog.Logger, load func() (T, error), paths ...string) (*watched[T], error) {
	w := &watched[T]{what: what, paths: paths, load: load, log: log}
	// Load first: its error names the flag.
	v, err := load()
	if err != nil {
		return nil, err
	}
	st, err := stampsOf(paths)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	w.good, w.val = st, v
	return w, nil
}

// get returns the current value, reloading it first if a file changed. It
// costs one stat per file, far less than the handshake it serves.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, err := stampsOf(w.paths)
	if err != nil {
		if !w.statFailing { // once, not on every handshake
			w.log.Warn("cannot check "+w.what+" for changes; keeping the loaded one", "files", w.paths, "err", err)
			w.statFailing = true
		}
		return w.val
	}
	w.statFailing = false
	if slices.Equal(st, w.good) || slices.Equal(st, w.failed) {
		return w.val
	}
	v, err := w.load()
	if err != nil {
		w.failed = st
		w.log.Warn("reload "+w.what+" failed; keeping the loaded one until the files change again", "files", w.paths, "err", err)
		return w.val
	}
	w.good, w.failed, w.val = st, nil, v
	w.log.Info(w.what+" reloaded", "files", w.paths)
	return v
}
