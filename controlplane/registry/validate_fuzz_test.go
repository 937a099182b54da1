package registry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fuzzServer builds the registration under test from typed fuzz arguments
// (so that most inputs get past the first checks) and merges raw, a
// protobuf-encoded Server, over it (so that any field can take any value).
func fuzzServer(raw []byte, name string, transport uint8, target, key, val, tag string, timeout, backoff int64) *mcpmeshv1.Server {
	s := &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport(transport % 5)}
	switch s.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		s.Stdio = &mcpmeshv1.StdioConfig{Command: target}
		if key != "" {
			s.Stdio.Env = map[string]string{key: val}
		}
	default:
		s.Http = &mcpmeshv1.HttpConfig{Url: target}
		if key != "" {
			s.Http.Headers = map[string]string{key: val}
		}
	}
	if tag != "" {
		s.Tags = []string{tag}
	}
	if timeout != 0 {
		s.Timeout = durationpb.New(time.Duration(timeout))
	}
	if backoff != 0 {
		s.Backoff = []*durationpb.Duration{durationpb.New(time.Duration(backoff))}
	}
	if len(raw) > 0 {
		extra := &mcpmeshv1.Server{}
		if proto.Unmarshal(raw, extra) == nil {
			proto.Merge(s, extra)
		}
	}
	return s
}

func mustMarshal(f *testing.F, s *mcpmeshv1.Server) []byte {
	b, err := proto.Marshal(s)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzCreateServer checks CreateServer of the real registry service over a
// real in-memory store: a refused registration is InvalidArgument naming the
// field (or AlreadyExists for a taken name) and leaves the store exactly as
// it was; a dry run gives the same verdict and never writes; an accepted one
// bumps the revision once and reads back (store and GetServer) equal to what
// was sent, secrets masked by GetServer only.
func FuzzCreateServer(f *testing.F) {
	ctx := context.Background()
	st := store.NewMemory()
	agg := health.New(st, nil, nil)
	disc := discovery.New(st, agg, nil)
	f.Cleanup(func() { disc.Close(); st.Close() })
	svc := registry.New(st, disc, agg, nil)
	tr := &http.Transport{}
	f.Cleanup(tr.CloseIdleConnections)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, s := range []*mcpmeshv1.Server{stdio("base"), httpSrv("web", "https://example.test/mcp")} {
		if _, err := svc.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: s}); err != nil {
			f.Fatal(err)
		}
	}

	stdioT, httpT, sseT := uint8(mcpmeshv1.Transport_TRANSPORT_STDIO), uint8(mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP), uint8(mcpmeshv1.Transport_TRANSPORT_SSE)
	sec := int64(time.Second)
	f.Add([]byte(nil), "files", stdioT, "npx", "TOKEN", "a=b", "prod", 5*sec, sec)
	f.Add([]byte(nil), "gh", httpT, "https://h/mcp", "Authorization", "Bearer x", "team-a", int64(0), int64(0))
	f.Add([]byte(nil), "old", sseT, "http://127.0.0.1:9000/sse", "", "", "", int64(0), 500*int64(time.Millisecond))
	f.Add([]byte(nil), "base", stdioT, "echo", "", "", "", int64(0), int64(0))            // taken
	f.Add([]byte(nil), "Bad_Name", stdioT, "echo", "", "", "", int64(0), int64(0))        // name
	f.Add([]byte(nil), "a", stdioT, "  ", "", "", "", int64(0), int64(0))                 // command
	f.Add([]byte(nil), "a", stdioT, "x", "A=B", "v", "", int64(0), int64(0))              // env key
	f.Add([]byte(nil), "a", httpT, "ftp://h/", "", "", "", int64(0), int64(0))            // url
	f.Add([]byte(nil), "a", httpT, "http://h/", "Bad Name", "v", "", int64(0), int64(0))  // header
	f.Add([]byte(nil), "a", httpT, "http://h/", "X(1)", "v", "", int64(0), int64(0))      // header
	f.Add([]byte(nil), "a", httpT, "http://h/", "X", "v\r\nY: 1", "", int64(0), int64(0)) // header value
	f.Add([]byte(nil), "a", stdioT, "x", "K", "v\x00", "", int64(0), int64(0))            // env value
	f.Add([]byte(nil), "a", httpT, "http://h/", "", "", "", int64(2*time.Hour), int64(0)) // timeout
	f.Add([]byte(nil), "a", httpT, "http://h/", "", "", "", -sec, int64(0))               // timeout
	f.Add([]byte(nil), "a", httpT, "http://h/", "", "", "", int64(0), int64(time.Hour))   // backoff
	f.Add([]byte(nil), "a", httpT, "http://h/", "", "", "Bad Tag", int64(0), int64(0))    // tag
	f.Add([]byte(nil), "a", uint8(0), "http://h/", "", "", "", int64(0), int64(0))        // transport
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Stdio: &mcpmeshv1.StdioConfig{Command: "x"}}), "a", httpT, "http://h/", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Endpoints: []string{"http://h2/", "nope"}}), "a", httpT, "http://h/", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Endpoints: []string{"http://h2/"}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Timeout: &durationpb.Duration{Seconds: 1, Nanos: -1}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{ModRevision: 9, CreatedAt: timestamppb.Now(), Redacted: true, Enabled: proto.Bool(false), Description: "d", Stdio: &mcpmeshv1.StdioConfig{Args: []string{"-y"}, WorkingDir: "/srv"}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))

	// Field sizes: one byte over each bound.
	over := func(n int) string { return strings.Repeat("a", n+1) }
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Stdio: &mcpmeshv1.StdioConfig{Args: []string{over(registry.MaxArgLen)}}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Stdio: &mcpmeshv1.StdioConfig{Args: make([]string, registry.MaxArgs+1)}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Stdio: &mcpmeshv1.StdioConfig{WorkingDir: over(registry.MaxWorkingDirLen)}}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Description: over(registry.MaxDescriptionLen)}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add(mustMarshal(f, &mcpmeshv1.Server{Tags: make([]string, registry.MaxTags+1)}), "a", stdioT, "x", "", "", "", int64(0), int64(0))
	f.Add([]byte(nil), "a", stdioT, over(registry.MaxCommandLen), "", "", "", int64(0), int64(0))
	f.Add([]byte(nil), "a", httpT, "http://h/"+over(registry.MaxURLLen), "", "", "", int64(0), int64(0))
	f.Add([]byte(nil), "a", stdioT, "x", over(registry.MaxMapKeyLen), "v", "", int64(0), int64(0))
	f.Add([]byte(nil), "a", httpT, "http://h/", "X", over(registry.MaxMapValueLen), "", int64(0), int64(0))
	f.Add([]byte(nil), "a", stdioT, "x", "", "", "", int64(0), int64(registry.MinBackoffStep-1))

	f.Fuzz(func(t *testing.T, raw []byte, name string, transport uint8, target, key, val, tag string, timeout, backoff int64) {
		in := fuzzServer(raw, name, transport, target, key, val, tag, timeout, backoff)
		if _, err := proto.Marshal(in); err != nil {
			return // e.g. invalid UTF-8: no gRPC client can send it
		}
		sent := proto.Clone(in).(*mcpmeshv1.Server)
		before, err := st.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		unchanged := func(what string) {
			t.Helper()
			now, err := st.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if now.Revision != before.Revision || len(now.Servers) != len(before.Servers) {
				t.Fatalf("%s changed the store: revision %d -> %d, %d -> %d servers\n%s", what, before.Revision, now.Revision, len(before.Servers), len(now.Servers), prototext.Format(sent))
			}
			for i := range now.Servers {
				if !proto.Equal(now.Servers[i], before.Servers[i]) {
					t.Fatalf("%s changed server %q\n%s", what, now.Servers[i].GetName(), prototext.Format(sent))
				}
			}
		}

		_, dryErr := svc.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: in, ValidateOnly: true})
		unchanged("a dry run")
		resp, err := svc.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: in})
		if !proto.Equal(in, sent) {
			t.Fatalf("CreateServer modified its request")
		}
		if status.Code(dryErr) != status.Code(err) {
			t.Fatalf("dry run said %v, the real create %v\n%s", dryErr, err, prototext.Format(sent))
		}
		if err != nil {
			unchanged("a refused create")
			checkRefusal(t, err, sent, before)
			return
		}

		// Accepted: the data plane can use it. Go's HTTP client checks every
		// header before it dials (here: never, the context is cancelled);
		// exec refuses a NUL in the environment.
		if len(sent.GetHttp().GetHeaders()) > 0 {
			hr, herr := http.NewRequestWithContext(cancelled, http.MethodPost, "http://127.0.0.1:1/mcp", nil)
			if herr != nil {
				t.Fatal(herr)
			}
			for k, v := range sent.GetHttp().GetHeaders() {
				hr.Header[k] = []string{v}
			}
			if _, rerr := tr.RoundTrip(hr); !errors.Is(rerr, context.Canceled) {
				t.Fatalf("accepted headers %q that Go's HTTP client refuses: %v", sent.GetHttp().GetHeaders(), rerr)
			}
		}
		for k, v := range sent.GetStdio().GetEnv() {
			if strings.ContainsRune(k+v, 0) {
				t.Fatalf("accepted env %q=%q with a NUL byte", k, v)
			}
		}

		checkSizes(t, sent)

		// Accepted: one revision, and it reads back as sent.
		rev := before.Revision + 1
		if resp.GetRevision() != rev {
			t.Fatalf("revision = %d, want %d", resp.GetRevision(), rev)
		}
		stored, err := st.GetServer(ctx, sent.GetName())
		if err != nil {
			t.Fatalf("accepted server %q is not in the store: %v", sent.GetName(), err)
		}
		want := proto.Clone(sent).(*mcpmeshv1.Server)
		want.CreateRevision, want.ModRevision, want.Redacted = rev, rev, false
		want.CreatedAt, want.UpdatedAt = stored.GetCreatedAt(), stored.GetUpdatedAt()
		if stored.GetCreatedAt() == nil || !proto.Equal(stored, want) {
			t.Fatalf("stored server differs from the one sent:\nstored %s\nwant   %s", prototext.Format(stored), prototext.Format(want))
		}
		got, err := svc.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: sent.GetName()})
		if err != nil {
			t.Fatalf("GetServer of an accepted server: %v", err)
		}
		masked := proto.Clone(want).(*mcpmeshv1.Server)
		masked.Redacted = true
		for k := range masked.GetStdio().GetEnv() {
			masked.Stdio.Env[k] = registry.Redacted
		}
		for k := range masked.GetHttp().GetHeaders() {
			masked.Http.Headers[k] = registry.Redacted
		}
		if !proto.Equal(got.GetServer(), masked) || !proto.Equal(resp.GetServer(), masked) {
			t.Fatalf("GetServer/CreateServer returned\n%s\n%s\nwant (secrets masked)\n%s", prototext.Format(got.GetServer()), prototext.Format(resp.GetServer()), prototext.Format(masked))
		}
		// Put the store back for the next input.
		if _, err := svc.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: sent.GetName()}); err != nil {
			t.Fatal(err)
		}
	})
}

// checkSizes fails if an accepted registration has a field over its bound.
func checkSizes(t *testing.T, s *mcpmeshv1.Server) {
	t.Helper()
	over := func(what string, n, limit int) {
		if n > limit {
			t.Fatalf("accepted %s of %d, over the bound %d", what, n, limit)
		}
	}
	over("url", len(s.GetHttp().GetUrl()), registry.MaxURLLen)
	over("endpoints", len(s.GetEndpoints()), registry.MaxEndpoints)
	for _, ep := range s.GetEndpoints() {
		over("endpoint", len(ep), registry.MaxURLLen)
	}
	over("command", len(s.GetStdio().GetCommand()), registry.MaxCommandLen)
	over("args", len(s.GetStdio().GetArgs()), registry.MaxArgs)
	for _, a := range s.GetStdio().GetArgs() {
		over("arg", len(a), registry.MaxArgLen)
	}
	over("working dir", len(s.GetStdio().GetWorkingDir()), registry.MaxWorkingDirLen)
	for _, m := range []map[string]string{s.GetStdio().GetEnv(), s.GetHttp().GetHeaders()} {
		over("env/header entries", len(m), registry.MaxMapEntries)
		for k, v := range m {
			over("env/header name", len(k), registry.MaxMapKeyLen)
			over("env/header value", len(v), registry.MaxMapValueLen)
		}
	}
	over("tags", len(s.GetTags()), registry.MaxTags)
	over("description", len(s.GetDescription()), registry.MaxDescriptionLen)
	for _, d := range s.GetBackoff() {
		if d.AsDuration() < registry.MinBackoffStep {
			t.Fatalf("accepted backoff step %s under %s", d.AsDuration(), registry.MinBackoffStep)
		}
	}
}

// checkRefusal: InvalidArgument names the field in its message and in a
// BadRequest detail; AlreadyExists only for a name that is taken.
func checkRefusal(t *testing.T, err error, sent *mcpmeshv1.Server, before *store.State) {
	t.Helper()
	st := status.Convert(err)
	switch st.Code() {
	case codes.AlreadyExists:
		for _, s := range before.Servers {
			if s.GetName() == sent.GetName() {
				return
			}
		}
		t.Fatalf("AlreadyExists for the free name %q", sent.GetName())
	case codes.InvalidArgument:
		var field string
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
				field = br.GetFieldViolations()[0].GetField()
			}
		}
		if !strings.HasPrefix(field, "server") || !strings.HasPrefix(st.Message(), field+": ") {
			t.Fatalf("InvalidArgument %q (field %q) does not name a server field", st.Message(), field)
		}
	default:
		t.Fatalf("refused with %v, want InvalidArgument or AlreadyExists\n%s", err, prototext.Format(sent))
	}
}
