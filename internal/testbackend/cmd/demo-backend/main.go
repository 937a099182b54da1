// Command demo-backend is the mcpmesh demo/test MCP server: stdio by default,
// or streamable HTTP (--http) or legacy SSE (--sse) on a TCP address; with
// --forward, a plain reverse proxy instead (the benchmarks' floor).
//
// With --oauth-as ADDR (and --http ADDR) it is an OAuth-protected backend
// instead: the test authorization server of internal/testauth listens on
// ADDR, and /mcp (one tool, whoami, answering the token's subject) refuses
// requests without a valid access token of that server with 401 and
// WWW-Authenticate resource_metadata. It prints two lines tests parse:
//
//	listening on http://127.0.0.1:PORT/mcp
//	authorization server on http://127.0.0.1:PORT
//
// --oauth-token-ttl sets the access tokens' lifetime (default 1h, e.g. 2s for
// refresh tests), --oauth-scopes the scopes the resource advertises, and
// --oauth-subject the user who approves. The authorization server's test
// controls (revoke every grant, call counts) are described in
// internal/testauth.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
	"github.com/mcpmesh/mcpmesh/internal/testbackend"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "demo-backend: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts testbackend.Options
	var httpAddr, sseAddr string
	var stateful, modern bool
	var cacheScope, forward, hostileMode string
	fs.StringVar(&opts.Name, "name", "demo", "backend name (returned by the whoami tool)")
	fs.IntVar(&opts.Tools, "tools", 0, "number of extra generated tools (tool-0000, …)")
	fs.BoolVar(&opts.WideEcho, "wide-echo", false, "also serve echo_wide: echo with a 60-parameter input schema")
	fs.IntVar(&opts.PageSize, "page-size", 0, "server-side page size of list results (0 = no paging)")
	fs.StringVar(&httpAddr, "http", "", "serve streamable HTTP on this address at /mcp (e.g. 127.0.0.1:0)")
	fs.StringVar(&sseAddr, "sse", "", "serve legacy SSE on this address at /sse and /message")
	fs.BoolVar(&modern, "modern", false, "with --http: also serve MCP 2026-07-28 (server/discover, stateless requests); without it only the 2025 revisions are advertised")
	fs.BoolVar(&opts.InputTools, "input-tools", false, "also serve ask_sample (an input_required sampling) and grow (adds a tool: list_changed)")
	fs.Int64Var(&opts.CacheTTLms, "cache-ttl-ms", 0, "ttlMs of list and read results (0: mcp-go's default, 0)")
	fs.StringVar(&cacheScope, "cache-scope", "private", "cacheScope of list and read results with --cache-ttl-ms: public or private")
	fs.BoolVar(&stateful, "stateful", false, "with --http: remember the sessions it issued and answer 404 for others, as a restarted stateful server does")
	fs.StringVar(&hostileMode, "hostile", "", "with --http: misbehave for hostile-input tests: "+hostileModeList())
	fs.StringVar(&forward, "forward", "", "with --http: serve no MCP of its own but forward /mcp to this URL with net/http's httputil.ReverseProxy (the benchmarks' measure of a plain Go HTTP hop)")
	var oauthAS, oauthScopes, oauthSubject string
	var oauthTTL time.Duration
	fs.StringVar(&oauthAS, "oauth-as", "", "with --http: protect /mcp with OAuth and run the test authorization server on this address")
	fs.DurationVar(&oauthTTL, "oauth-token-ttl", time.Hour, "with --oauth-as: lifetime of access tokens")
	fs.StringVar(&oauthScopes, "oauth-scopes", "mcp", "with --oauth-as: comma-separated scopes the resource advertises")
	fs.StringVar(&oauthSubject, "oauth-subject", "test-user", "with --oauth-as: the user who approves on the consent page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case oauthAS != "" && httpAddr == "":
		return errors.New("--oauth-as needs --http")
	case oauthAS != "" && (forward != "" || hostileMode != "" || stateful):
		return errors.New("--oauth-as serves its own protected backend: drop --forward, --hostile and --stateful")
	case oauthTTL <= 0:
		return fmt.Errorf("--oauth-token-ttl must be positive, got %s", oauthTTL)
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case opts.Tools < 0:
		return fmt.Errorf("--tools must be >= 0, got %d", opts.Tools)
	case opts.PageSize < 0:
		return fmt.Errorf("--page-size must be >= 0, got %d", opts.PageSize)
	case httpAddr != "" && sseAddr != "":
		return errors.New("--http and --sse are exclusive: pick one transport")
	case stateful && httpAddr == "":
		return errors.New("--stateful needs --http")
	case modern && httpAddr == "":
		return errors.New("--modern needs --http")
	case cacheScope != "public" && cacheScope != "private":
		return fmt.Errorf("--cache-scope must be public or private, got %q", cacheScope)
	case forward != "" && httpAddr == "":
		return errors.New("--forward needs --http")
	case hostileMode == "huge-line" && (httpAddr != "" || sseAddr != ""):
		return errors.New("--hostile huge-line is a stdio mode: drop --http and --sse")
	case hostileMode != "" && hostileMode != "huge-line" && httpAddr == "":
		return errors.New("--hostile needs --http")
	case hostileMode != "" && hostileModes[hostileMode] == "":
		return fmt.Errorf("--hostile %q: want one of %s", hostileMode, hostileModeList())
	}
	if oauthAS != "" {
		return serveOAuth(ctx, httpAddr, oauthAS, oauthTTL, oauthScopes, oauthSubject, opts.Name, stderr)
	}
	if forward != "" {
		target, err := url.Parse(forward)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return fmt.Errorf("--forward %q: want an http(s) URL", forward)
		}
		log := slog.New(slog.NewTextHandler(stderr, nil)).With("forwarder", target.Host)
		return serveHTTP(ctx, log, httpAddr, "/mcp", stderr, func(string) http.Handler {
			return &httputil.ReverseProxy{
				Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.URL.Path = target.Path },
				FlushInterval: -1, // event streams as they come
				ErrorLog:      stdlog.New(io.Discard, "", 0),
			}
		})
	}
	opts.CacheScope = mcp.CacheScope(cacheScope)
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("backend", opts.Name)
	mcpSrv := testbackend.New(opts)

	switch {
	case httpAddr != "":
		return serveHTTP(ctx, log, httpAddr, "/mcp", stderr, func(string) http.Handler {
			hopts := []server.StreamableHTTPOption{server.WithStateful(stateful)}
			if !modern {
				// mcp-go serves 2026-07-28 by default; a data plane would then
				// reach this backend statelessly (no upstream sessions).
				hopts = append(hopts, server.WithStreamableHTTPProtocolVersions(legacyVersions...))
			}
			h := server.NewStreamableHTTPServer(mcpSrv, hopts...)
			if hostileMode != "" {
				return hostileHandler{hostile(hostileMode, h), h}
			}
			return h
		})
	case sseAddr != "":
		return serveHTTP(ctx, log, sseAddr, "/sse", stderr, func(base string) http.Handler {
			// The SSE endpoint event carries an absolute message URL, so the
			// base must be the real address (the port may have been 0).
			return server.NewSSEServer(mcpSrv, server.WithBaseURL(base))
		})
	case hostileMode == "huge-line":
		return hugeLine(stdout)
	default:
		err := server.NewStdioServer(mcpSrv).Listen(ctx, stdin, stdout)
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("serve stdio: %w", err)
		}
		return nil
	}
}

// serveHTTP listens first so that ":0" resolves to a real port, prints the
// one line tests parse, then serves until ctx is done.
func serveHTTP(ctx context.Context, log *slog.Logger, addr, path string, stderr io.Writer, handler func(base string) http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	base := "http://" + ln.Addr().String()
	h := handler(base)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	if path == "/sse" {
		mux.Handle("/message", h)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "listening on %s%s\n", base, path)
	// With a timestamp: e2e tests measure recovery from the moment the
	// port answers.
	log.Info("listening", "url", base+path)

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", base, err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Long-lived SSE/GET streams would hold Shutdown until its deadline:
	// close the MCP sessions first.
	if hh, ok := h.(hostileHandler); ok {
		h = hh.mcp
	}
	switch h := h.(type) {
	case *server.StreamableHTTPServer:
		_ = h.Shutdown(shutdownCtx)
	case *server.SSEServer:
		h.CloseSessions()
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", base, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", base, err)
	}
	return nil
}

// legacyVersions are the revisions served without --modern.
var legacyVersions = []string{mcp.ProtocolVersion20251125, "2025-06-18", "2025-03-26", "2024-11-05"}

// serveOAuth runs the test authorization server and the protected backend
// until ctx is done.
func serveOAuth(ctx context.Context, httpAddr, asAddr string, ttl time.Duration, scopes, subject, name string, stderr io.Writer) error {
	var scopeList []string
	for sc := range strings.SplitSeq(scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			scopeList = append(scopeList, sc)
		}
	}
	as, err := testauth.Start(testauth.Options{Addr: asAddr, AccessTokenTTL: ttl, Subject: subject, Scopes: scopeList})
	if err != nil {
		return fmt.Errorf("authorization server: %w", err)
	}
	defer as.Close()
	be, err := testauth.NewBackend(as, testauth.BackendOptions{Addr: httpAddr, Name: name, Scopes: scopeList})
	if err != nil {
		return fmt.Errorf("protected backend: %w", err)
	}
	defer be.Close()
	fmt.Fprintf(stderr, "listening on %s\n", be.URL())
	fmt.Fprintf(stderr, "authorization server on %s\n", as.Issuer())
	<-ctx.Done()
	return nil
}
