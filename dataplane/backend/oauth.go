package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNeedsAuthorization marks a request to an OAuth backend that has no
// usable access token: none in the snapshot, or the backend refused it and
// the control plane gave no new one. An operator must authorize the server
// at the data plane's /oauth page.
var ErrNeedsAuthorization = errors.New("needs OAuth authorization")

// RefreshFunc asks the control plane for a new access token of server after
// the backend refused the token whose lowercase hex SHA-256 is rejected
// (OAuthService.RefreshAuthorization with the data plane's own credential).
// An empty token with a nil error means the control plane holds no usable
// grant.
type RefreshFunc func(ctx context.Context, server, rejected string) (string, error)

// refreshTimeout bounds one refresh call, which runs detached from the
// request that triggered it (other requests wait on it too).
const refreshTimeout = 30 * time.Second

// authHolder keeps the access token of one OAuth server, across snapshots
// and replacements of its Backend. Requests read it per request, so a
// snapshot in which only the token changed reconnects nothing.
type authHolder struct {
	server  string
	refresh RefreshFunc // nil: a 401 is final
	// base ends when the manager closes, ending a refresh in flight.
	base context.Context

	tok atomic.Pointer[string] // the token to send; nil or "" means none

	mu sync.Mutex
	// refused is the last token the backend refused for which no new one
	// came back: a snapshot still carrying it does not make it usable again.
	refused string
	changed chan struct{} // closed and replaced whenever tok changes
	flight  *refreshCall  // the refresh in progress, if any
}

type refreshCall struct {
	done chan struct{}
	tok  string
	err  error
}

func newAuthHolder(base context.Context, server string, refresh RefreshFunc) *authHolder {
	return &authHolder{base: base, server: server, refresh: refresh, changed: make(chan struct{})}
}

// token returns the current token, "" when there is none.
func (h *authHolder) token() string {
	if p := h.tok.Load(); p != nil {
		return *p
	}
	return ""
}

// watch returns the current token and a channel closed at its next change.
func (h *authHolder) watch() (string, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.token(), h.changed
}

// setLocked publishes tok and wakes the watchers if it changed.
func (h *authHolder) setLocked(tok string) {
	if h.token() == tok {
		return
	}
	h.tok.Store(&tok)
	close(h.changed)
	h.changed = make(chan struct{})
}

// offer takes the token of a snapshot ("" when the snapshot has none).
func (h *authHolder) offer(tok string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if tok != "" && tok == h.refused {
		return
	}
	h.setLocked(tok)
}

// refreshAfter returns a token to use instead of rejected, asking the
// control plane once for every concurrent caller (singleflight). It returns
// ErrNeedsAuthorization when none comes back.
func (h *authHolder) refreshAfter(ctx context.Context, rejected string) (string, error) {
	h.mu.Lock()
	if cur := h.token(); cur != "" && cur != rejected {
		h.mu.Unlock()
		return cur, nil // a newer token arrived meanwhile
	}
	if h.refresh == nil {
		h.refusedLocked(rejected)
		h.mu.Unlock()
		return "", fmt.Errorf("server %q: %w (the backend refused the token)", h.server, ErrNeedsAuthorization)
	}
	call := h.flight
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		h.flight = call
		go h.run(call, rejected)
	}
	h.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// run performs one refresh and publishes its outcome.
func (h *authHolder) run(call *refreshCall, rejected string) {
	ctx, cancel := context.WithTimeout(h.base, refreshTimeout)
	defer cancel()
	sum := sha256.Sum256([]byte(rejected))
	tok, err := h.refresh(ctx, h.server, hex.EncodeToString(sum[:]))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flight = nil
	switch {
	case err != nil:
		// The control plane could not answer: the token is not marked
		// refused, so a snapshot carrying it is tried again.
		call.err = fmt.Errorf("server %q: %w (refresh: %w)", h.server, ErrNeedsAuthorization, err)
		if h.token() == rejected {
			h.setLocked("")
		}
	case tok == "" || tok == rejected:
		call.err = fmt.Errorf("server %q: %w (the backend refused the token and the control plane has no other)", h.server, ErrNeedsAuthorization)
		h.refusedLocked(rejected)
	default:
		call.tok = tok
		h.setLocked(tok)
	}
	close(call.done)
}

func (h *authHolder) refusedLocked(rejected string) {
	h.refused = rejected
	if h.token() == rejected {
		h.setLocked("")
	}
}

// authTransport sends the holder's token as "Authorization: Bearer" on
// every request (POSTs, GET streams and their reconnects alike) and, on a
// 401, asks for a new token and repeats the request once with it.
type authTransport struct {
	base http.RoundTripper
	h    *authHolder
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := t.h.token()
	if tok == "" {
		closeBody(req)
		return nil, fmt.Errorf("server %q: %w", t.h.server, ErrNeedsAuthorization)
	}
	// A body that cannot be replayed cannot be retried after a 401.
	replay := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	resp, err := t.base.RoundTrip(withBearer(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replay {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	next, err := t.h.refreshAfter(req.Context(), tok)
	if err != nil {
		return nil, err
	}
	again := withBearer(req, next)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("repeat request after a token refresh: %w", err)
		}
		again.Body = body
	}
	resp, err = t.base.RoundTrip(again)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		// Refused again straight after a refresh: the grant is no good.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.h.mu.Lock()
		t.h.refusedLocked(next)
		t.h.mu.Unlock()
		return nil, fmt.Errorf("server %q: %w (the backend refused the refreshed token)", t.h.server, ErrNeedsAuthorization)
	}
	return resp, err
}

// withBearer is a shallow copy of req with its own header carrying tok
// (a RoundTripper must not change the request it was given).
func withBearer(req *http.Request, tok string) *http.Request {
	r := *req
	r.Header = req.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return &r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// withAuth wraps rt with h's bearer token; with no holder (the server does
// not use OAuth) it is rt.
func withAuth(rt http.RoundTripper, h *authHolder) http.RoundTripper {
	if h == nil {
		return rt
	}
	return &authTransport{base: rt, h: h}
}
