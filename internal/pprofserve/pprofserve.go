// Package pprofserve serves net/http/pprof on a listener of its own, for the
// --pprof-addr flag of controlplane and dataplane: profiles never share the
// public MCP, health or metrics listener, and nothing is served unless asked.
package pprofserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"
)

// FreeOSMemoryPath forces a garbage collection and returns freed memory to
// the operating system (POST). Benchmarks call it before reading a process's
// RSS so that a delta counts retained memory, not garbage the scavenger has
// not returned yet.
const FreeOSMemoryPath = "/debug/free-os-memory"

// Handler is the mux served on the pprof listener: the net/http/pprof
// endpoints under /debug/pprof/ and FreeOSMemoryPath.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST "+FreeOSMemoryPath, func(w http.ResponseWriter, _ *http.Request) {
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// Start listens on addr and serves Handler until ctx ends. An empty addr
// disables it: Start returns nil, nil. The listener is opened before Start
// returns, so a taken address fails at once; the address served is returned
// (useful with port 0).
func Start(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	if addr == "" {
		return nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --pprof-addr %s: %w", addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("pprof listens on a non-loopback address: profiles expose memory contents and cost CPU; keep it behind a firewall",
			"pprof_addr", ln.Addr().String())
	}
	// No write timeout: a CPU profile or trace streams for ?seconds=N.
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve pprof", "pprof_addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		// Close, not Shutdown: an open profile must not hold the process up.
		_ = srv.Close()
	}()
	log.Info("pprof serving", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return ln.Addr(), nil
}
