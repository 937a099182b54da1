package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/httpapi"
)

// TestInFlightGauge: a request counts as in flight from its start to its
// end, so e2e tests can tell that calls they started reached the data plane.
func TestInFlightGauge(t *testing.T) {
	api, err := httpapi.New(httpapi.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	entered, release := make(chan struct{}, 3), make(chan struct{})
	mux := http.NewServeMux()
	api.Register(mux)
	mux.HandleFunc("POST /hold", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	})
	ts := httptest.NewServer(api.Instrument(mux))
	defer ts.Close()
	metric := func() string {
		t.Helper()
		_, body := getText(t, ts.URL+"/metrics")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, `mcpmesh_dataplane_http_requests_in_flight{method="POST"}`) {
				return l
			}
		}
		return ""
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	done := make(chan error, 3)
	for range 3 {
		go func() {
			resp, err := hc.Post(ts.URL+"/hold", "text/plain", nil)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
	}
	for range 3 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("held requests did not reach the handler within 10s")
		}
	}
	if got, want := metric(), `mcpmesh_dataplane_http_requests_in_flight{method="POST"} 3`; got != want {
		t.Errorf("with 3 requests held: %q, want %q", got, want)
	}
	close(release)
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("held request: %v", err)
		}
	}
	if got, want := metric(), `mcpmesh_dataplane_http_requests_in_flight{method="POST"} 0`; got != want {
		t.Errorf("after the requests ended: %q, want %q", got, want)
	}
	// A made-up method is counted under "other", so clients cannot grow the label set.
	req, _ := http.NewRequest("BREW", ts.URL+"/livez", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("BREW /livez: %v", err)
	}
	resp.Body.Close()
	if _, body := getText(t, ts.URL+"/metrics"); strings.Contains(body, `method="BREW"`) ||
		!strings.Contains(body, fmt.Sprintf(`mcpmesh_dataplane_http_requests_total{code="%d",method="other",route="other"} 1`, resp.StatusCode)) {
		t.Errorf("/metrics after a BREW request:\n%s", grep(body, "http_requests_total"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
