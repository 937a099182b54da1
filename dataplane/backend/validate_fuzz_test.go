package backend

import (
	"log/slog"
	"regexp"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// genReader hands out choices driven by fuzz bytes; once they run out every
// choice is the first one, so short inputs give small snapshots.
type genReader []byte

func (g *genReader) next(n int) int {
	if len(*g) == 0 {
		return 0
	}
	b := (*g)[0]
	*g = (*g)[1:]
	return int(b) % n
}

func pick[T any](g *genReader, pool []T) T { return pool[g.next(len(pool))] }

var (
	genNames   = []string{"a", "b", "good", "srv-1", "a", "Bad_Name", "", "x-" + string(make([]byte, 40))}
	genTargets = []string{"x", "http://h/mcp", "https://h:8443/mcp", "", "/mcp", "ftp://h/", "http://", "http://[::1]:80/sse", "h:80"}
	genKeys    = []string{"", "K", "Authorization", "A=B", "K\x00", "=", "X Y"}
	genDurs    = []*durationpb.Duration{nil, durationpb.New(time.Second), durationpb.New(0), durationpb.New(-time.Second), {Seconds: 1, Nanos: -1}, {Seconds: 315576000001}, durationpb.New(250 * time.Millisecond)}
)

// genSnapshot builds a snapshot from choices, most of them valid, so that
// the accepting paths are reached as often as the refusing ones.
func genSnapshot(g *genReader) *mcpmeshv1.ConfigSnapshot {
	snap := &mcpmeshv1.ConfigSnapshot{Revision: uint64(g.next(256))}
	if g.next(2) == 1 {
		res := &mcpmeshv1.ResilienceSettings{Jitter: g.next(2) == 1, ProbeInterval: pick(g, genDurs), RequestTimeout: pick(g, genDurs)}
		for range g.next(3) {
			res.Backoff = append(res.Backoff, pick(g, genDurs))
		}
		snap.Settings = &mcpmeshv1.Settings{Resilience: res}
	}
	for range g.next(4) {
		if g.next(16) == 0 {
			snap.Servers = append(snap.Servers, nil)
			continue
		}
		s := &mcpmeshv1.Server{Name: pick(g, genNames), Transport: mcpmeshv1.Transport(g.next(5))}
		target, key := pick(g, genTargets), pick(g, genKeys)
		switch g.next(3) {
		case 0:
			s.Stdio = &mcpmeshv1.StdioConfig{Command: target, Args: []string{"-v"}}
			if key != "" {
				s.Stdio.Env = map[string]string{key: "v"}
			}
		case 1:
			s.Http = &mcpmeshv1.HttpConfig{Url: target}
			if key != "" {
				s.Http.Headers = map[string]string{key: "v"}
			}
		}
		for range g.next(3) {
			s.Endpoints = append(s.Endpoints, pick(g, genTargets))
		}
		s.Timeout = pick(g, genDurs)
		for range g.next(3) {
			s.Backoff = append(s.Backoff, pick(g, genDurs))
		}
		if e := g.next(3); e > 0 {
			s.Enabled = proto.Bool(e == 1)
		}
		snap.Servers = append(snap.Servers, s)
	}
	return snap
}

// fieldNamed is what every refusal must look like: the snapshot is named
// invalid and the field at fault is named.
var fieldNamed = regexp.MustCompile(`^invalid snapshot: (snapshot is nil|servers\[\d+\]( is empty|\.name: )|settings\.resilience\.(probe_interval|backoff\[\d+\]|request_timeout) |server "[a-z0-9-]+": (stdio\.command|stdio\.env|http\.url|endpoints(\[\d+\])?|timeout|backoff\[\d+\]|transport)[ :])`)

type servedState struct {
	names   []string
	ptrs    []*Backend
	cfgs    []*mcpmeshv1.Server
	steps   [][]time.Duration
	jitter  []bool
	timeout []time.Duration
	probe   []time.Duration
}

func captureState(m *Manager) servedState {
	var s servedState
	for _, b := range m.List() {
		p := b.params()
		s.names, s.ptrs = append(s.names, b.Name()), append(s.ptrs, b)
		s.cfgs = append(s.cfgs, proto.Clone(b.Config()).(*mcpmeshv1.Server))
		s.steps = append(s.steps, slices.Clone(p.schedule.Steps))
		s.jitter, s.timeout, s.probe = append(s.jitter, p.schedule.Jitter), append(s.timeout, p.timeout), append(s.probe, p.probeInterval)
	}
	return s
}

func (s servedState) equal(o servedState) bool {
	if !slices.Equal(s.names, o.names) || !slices.Equal(s.ptrs, o.ptrs) || !slices.Equal(s.jitter, o.jitter) ||
		!slices.Equal(s.timeout, o.timeout) || !slices.Equal(s.probe, o.probe) {
		return false
	}
	for i := range s.cfgs {
		if !proto.Equal(s.cfgs[i], o.cfgs[i]) || !slices.Equal(s.steps[i], o.steps[i]) {
			return false
		}
	}
	return true
}

func sameParams(a, b params) bool {
	return slices.Equal(a.schedule.Steps, b.schedule.Steps) && a.schedule.Jitter == b.schedule.Jitter &&
		a.timeout == b.timeout && a.probeInterval == b.probeInterval && a.listResync == b.listResync
}

// FuzzSnapshotValidation checks the data plane's snapshot validation, from a
// protobuf-encoded snapshot (what the control plane sends) or a generated one:
//   - a refused snapshot is refused by Apply with an error naming the field,
//     and the manager serves exactly what it served, with the same backends,
//     configs and parameters;
//   - an accepted snapshot survives proto marshal/unmarshal equal and is
//     accepted again with the same parameters.
//
// Accepted snapshots are not applied: their commands and URLs are the
// fuzzer's, and applying would run or dial them.
func FuzzSnapshotValidation(f *testing.F) {
	m := NewManager(ManagerOptions{
		Logger:         slog.New(slog.DiscardHandler),
		Clock:          resilience.NewFakeClock(time.Unix(1_700_000_000, 0)),
		DefaultTimeout: 10 * time.Second,
		ListResync:     -1,
	})
	f.Cleanup(func() { _ = m.Close() })
	// Served before every input: a server on a port nothing listens on (it
	// fails its first connect and waits on the fake clock) and settings that
	// set every parameter, so a refused snapshot that leaked any of them shows.
	base := &mcpmeshv1.ConfigSnapshot{
		Revision: 1,
		Servers:  []*mcpmeshv1.Server{{Name: "good", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: "http://127.0.0.1:1/mcp"}, Timeout: durationpb.New(3 * time.Second)}},
		Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{
			Backoff:       []*durationpb.Duration{durationpb.New(3 * time.Second)},
			ProbeInterval: durationpb.New(250 * time.Millisecond),
		}},
	}
	if err := m.Apply(base); err != nil {
		f.Fatal(err)
	}
	before := captureState(m)

	seed := func(s *mcpmeshv1.ConfigSnapshot) {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil))
	}
	seed(base)
	seed(&mcpmeshv1.ConfigSnapshot{})
	httpSrv := func(name, url string) *mcpmeshv1.Server {
		return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: url}}
	}
	stdio := func(name, cmd string) *mcpmeshv1.Server {
		return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: cmd}}
	}
	seed(&mcpmeshv1.ConfigSnapshot{Revision: 7, ClusterSecret: make([]byte, 32), Servers: []*mcpmeshv1.Server{
		stdio("files", "npx"), httpSrv("gh", "https://h/mcp"),
		{Name: "old", Transport: mcpmeshv1.Transport_TRANSPORT_SSE, Http: &mcpmeshv1.HttpConfig{Url: "http://h:9000/sse"}, Endpoints: []string{"http://h2:9000/sse"}, Enabled: proto.Bool(false)},
	}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("Bad_Name", "http://x")}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "http://x"), httpSrv("a", "http://y")}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a"}}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{stdio("a", "")}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "/mcp")}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x", Env: map[string]string{"A=B": "c"}}}}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: "http://h/mcp"}, Endpoints: []string{"http://ok/mcp", "nope"}}}})
	seed(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}, Timeout: durationpb.New(-time.Second)}}})
	seed(&mcpmeshv1.ConfigSnapshot{Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{Backoff: []*durationpb.Duration{durationpb.New(0)}}}})
	seed(&mcpmeshv1.ConfigSnapshot{Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{ProbeInterval: durationpb.New(-time.Second), RequestTimeout: durationpb.New(time.Second)}}})
	// Generated: one valid stdio server; two servers with settings; junk.
	f.Add([]byte(nil), []byte{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte(nil), []byte{9, 1, 1, 1, 1, 2, 6, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 0, 1, 2, 1})
	f.Add([]byte{0xff, 0x01}, []byte{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8})

	f.Fuzz(func(t *testing.T, raw, gen []byte) {
		snap := &mcpmeshv1.ConfigSnapshot{}
		if len(raw) > 0 {
			if err := proto.Unmarshal(raw, snap); err != nil {
				return // the config client refuses it before validation
			}
		}
		g := genReader(gen)
		if len(gen) > 0 {
			proto.Merge(snap, genSnapshot(&g))
		}
		sent := proto.Clone(snap).(*mcpmeshv1.ConfigSnapshot)

		p, verr := m.validate(snap)
		if verr != nil {
			err := m.Apply(snap)
			if err == nil || err.Error() != verr.Error() {
				t.Fatalf("validate refused (%v) but Apply returned %v", verr, err)
			}
			if !fieldNamed.MatchString(err.Error()) {
				t.Fatalf("refusal %q does not name the field", err)
			}
			if now := captureState(m); !now.equal(before) {
				t.Fatalf("a refused snapshot changed what is served: %v -> %v\n%s", before.names, now.names, prototext.Format(sent))
			}
			if !proto.Equal(snap, sent) {
				t.Fatal("validation modified the snapshot")
			}
			return
		}
		if !proto.Equal(snap, sent) {
			t.Fatal("validation modified the snapshot")
		}
		b, err := proto.Marshal(snap)
		if err != nil {
			return // e.g. invalid UTF-8 from the generator: the control plane cannot send it
		}
		back := &mcpmeshv1.ConfigSnapshot{}
		if err := proto.Unmarshal(b, back); err != nil {
			t.Fatalf("unmarshal of an accepted snapshot: %v", err)
		}
		if !proto.Equal(back, snap) {
			t.Fatalf("accepted snapshot changed in a round trip:\n%s\n%s", prototext.Format(snap), prototext.Format(back))
		}
		p2, err := m.validate(back)
		if err != nil {
			t.Fatalf("accepted snapshot refused after a round trip: %v", err)
		}
		if !sameParams(p, p2) {
			t.Fatalf("parameters changed in a round trip: %+v -> %+v", p, p2)
		}
	})
}
