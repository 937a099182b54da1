package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
)

var requestSeeds = []string{
	"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 13\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: abc\r\n\r\n{\"jsonrpc\":1}",
	"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: */*\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n{}",
	"GET /mcp?x=1&y=%20 HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\nLast-Event-ID: 7\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"DELETE /mcp HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Odd:  v  \r\nX-Odd: w\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST http://x/mcp HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST /mcp HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nBad Key: x\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nK: \x01\r\n\r\n",
	"POST //x/../y HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"get /mcp HTTP/1.1\r\n\r\n",
	"POST /mcp HTTP/1.1\nHost: a\n\n",
	"POST /mcp HTTP/2.0\r\nHost: a\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: a\r\nX-\u00e9: x\r\nY: caf\u00e9\r\n\r\n",
}

// FuzzFastRequest: every head the fast path takes reads as net/http reads it.
func FuzzFastRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end := headEnd(in)
		if end < 0 {
			return
		}
		got := fastRequest(in[:end], bytes.NewReader(in[end:]))
		if got == nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(in), len(in)+16))
		if err != nil {
			t.Fatalf("fast path took %q, net/http refuses it: %v", in, err)
		}
		if got.Method != want.Method || got.URL.String() != want.URL.String() || got.RequestURI != want.RequestURI ||
			got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
			got.Host != want.Host || got.Close != want.Close || got.ContentLength != want.ContentLength ||
			want.TransferEncoding != nil || !reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.URL, want.URL) {
			t.Fatalf("%q:\nfast    %s %#v %s %d.%d host %q close %v cl %d %v\nnet/http %s %#v %s %d.%d host %q close %v cl %d %v te %v",
				in, got.Method, got.URL, got.Proto, got.ProtoMajor, got.ProtoMinor, got.Host, got.Close, got.ContentLength, got.Header,
				want.Method, want.URL, want.Proto, want.ProtoMajor, want.ProtoMinor, want.Host, want.Close, want.ContentLength, want.Header, want.TransferEncoding)
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: body %q, %v; net/http %q, %v", in, gb, gerr, wb, werr)
		}
	})
}

func TestFastRequestTakesMCPHeads(t *testing.T) {
	for _, s := range requestSeeds[:6] {
		in := []byte(s)
		if fastRequest(in[:headEnd(in)], bytes.NewReader(in[headEnd(in):])) == nil {
			t.Errorf("fast path leaves %q to net/http", s)
		}
	}
	for _, s := range requestSeeds[6:13] {
		in := []byte(s)
		if end := headEnd(in); end > 0 && fastRequest(in[:end], bytes.NewReader(in[end:])) != nil {
			t.Errorf("fast path takes %q", s)
		}
	}
}

func BenchmarkReadRequest(b *testing.B) {
	in := []byte(requestSeeds[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if fastRequest(in[:headEnd(in)], bytes.NewReader(nil)) == nil {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		r := bytes.NewReader(in)
		br := bufio.NewReader(r)
		for b.Loop() {
			r.Reset(in)
			br.Reset(r)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nDate: Thu, 03 Dec 2026 07:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found",
	"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
	"HTTP/1.1 100 Continue\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
	"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 -20 OK\r\nContent-Length: 1\r\n\r\nx",
}

// FuzzFastResponse: every response head the fast path takes reads as
// net/http reads it, body and errors included.
func FuzzFastResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(responseSeeds[0]), true)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		req, _ := http.NewRequest(http.MethodPost, "http://x/mcp", nil)
		if head {
			req.Method = http.MethodHead
		}
		got, gerr := readResponseHead(bufio.NewReaderSize(bytes.NewReader(in), len(in)+16), req)
		want, werr := http.ReadResponse(bufio.NewReaderSize(bytes.NewReader(in), len(in)+16), req)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: err %v; net/http %v", in, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
			got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.Close != want.Close ||
			got.ContentLength != want.ContentLength || !reflect.DeepEqual(got.Header, want.Header) ||
			!reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) || got.Request != want.Request {
			t.Fatalf("%q:\nfast     %q %d %s close %v cl %d %v\nnet/http %q %d %s close %v cl %d %v",
				in, got.Status, got.StatusCode, got.Proto, got.Close, got.ContentLength, got.Header,
				want.Status, want.StatusCode, want.Proto, want.Close, want.ContentLength, want.Header)
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: body %q, %v; net/http %q, %v", in, gb, gerr, wb, werr)
		}
	})
}

func TestFastResponseTakesMCPHeads(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://x/mcp", nil)
	for i, s := range responseSeeds {
		in := []byte(s)
		taken := fastResponse(in[:headEnd(in)], bytes.NewReader(in[headEnd(in):]), req) != nil
		if want := i < 4 || i == 10; taken != want {
			t.Errorf("%q: taken %v, want %v", s, taken, want)
		}
	}
}
