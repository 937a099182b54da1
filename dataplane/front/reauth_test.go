package front_test

import (
	"bufio"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
)

// An open stream whose credential is revoked ends at the next Reauthorize;
// one whose credential still passes stays open.
func TestReauthorizeEndsRevokedStreams(t *testing.T) {
	var mu sync.Mutex
	valid := map[string]bool{"Bearer a": true, "Bearer b": true}
	r := start(t, secretA, front.Options{Auth: func(req *http.Request) (front.Grant, int, string, string) {
		mu.Lock()
		defer mu.Unlock()
		if !valid[req.Header.Get("Authorization")] {
			return front.Grant{}, http.StatusUnauthorized, "Bearer", "key revoked"
		}
		return front.Grant{Principal: req.Header.Get("Authorization")}, 0, "", ""
	}})
	open := func(cred string) (*bufio.Reader, func()) {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/sse", nil)
		req.Header.Set("Authorization", cred)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /sse with %q: %s", cred, resp.Status)
		}
		br := bufio.NewReader(resp.Body)
		for { // up to the endpoint event: the stream is registered
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream of %q ended before its endpoint: %v", cred, err)
			}
			if strings.HasPrefix(line, "data:") {
				break
			}
		}
		return br, func() { resp.Body.Close() }
	}
	brA, closeA := open("Bearer a")
	defer closeA()
	_, closeB := open("Bearer b")
	defer closeB()
	if n := r.f.Reauthorize(); n != 0 {
		t.Fatalf("Reauthorize with every key valid ended %d streams", n)
	}
	mu.Lock()
	delete(valid, "Bearer a")
	mu.Unlock()
	if n := r.f.Reauthorize(); n != 1 {
		t.Fatalf("Reauthorize after revoking a ended %d streams, want 1", n)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := brA.ReadString('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked key's stream is still open")
	}
}
