package backend

import (
	"log/slog"
	"net"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/logging"
)

// TestURLCredentialsMasked: a backend whose URLs carry credentials fails to
// connect; its health, its endpoints' views and the data plane's log (as the
// binary sets it up) name the endpoints without them.
func TestURLCredentialsMasked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed port: every connect fails
	var logs syncBuffer
	e := newEnv(t, func(o *ManagerOptions) {
		o.Logger = slog.New(logging.Redacting(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	})
	e.apply(&mcpmeshv1.Server{
		Name:      "creds",
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: "http://alice:pw-one@" + addr + "/mcp?api_key=key-one", Headers: map[string]string{"Authorization": "Bearer hdr-one"}},
		Endpoints: []string{"http://tok-two@" + addr + "/mcp?token=tok-three"},
	})
	b := e.backend("creds")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_RETRYING)
	texts := []string{b.Health().GetLastError()}
	for _, eh := range b.Endpoints() {
		texts = append(texts, eh.URL, eh.LastError)
	}
	texts = append(texts, logs.String())
	for _, s := range texts {
		for _, secret := range []string{"pw-one", "key-one", "hdr-one", "tok-two", "tok-three"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
	}
	if !strings.Contains(b.Endpoints()[0].URL, "alice:***@") {
		t.Errorf("endpoint URL = %q, want the user kept and the password masked", b.Endpoints()[0].URL)
	}
}
