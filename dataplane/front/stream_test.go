package front

import (
	"net/http/httptest"
	"testing"
)

func TestListenerFallingBehindIsStopped(t *testing.T) {
	l := newListener(2)
	for i, want := range []bool{true, true, false, false} {
		if got := l.offer([]byte("{}")); got != want {
			t.Fatalf("offer %d = %v, want %v", i, got, want)
		}
	}
	select {
	case <-l.gone:
	default:
		t.Fatal("a full stream was not stopped")
	}
}

func TestEventFraming(t *testing.T) {
	tests := []struct{ data, want string }{
		{`{"a":1}`, "event: message\ndata: {\"a\":1}\n\n"},
		{"{\n \"a\": 1\n}", "event: message\ndata: {\ndata:  \"a\": 1\ndata: }\n\n"},
		{"{\r\n}", "event: message\ndata: {\ndata: }\n\n"},
		{"{\r}", "event: message\ndata: {\ndata: }\n\n"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		sw := startSSE(w)
		if err := sw.event(messageHead, []byte(tt.data)); err != nil {
			t.Fatal(err)
		}
		if got := w.Body.String(); got != tt.want {
			t.Errorf("event(%q) = %q, want %q", tt.data, got, tt.want)
		}
		if !w.Flushed {
			t.Error("event not flushed")
		}
	}
}
