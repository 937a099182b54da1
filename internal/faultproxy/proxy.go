package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

const (
	// Pass forwards every byte at once.
	Pass Mode = iota
	// Delay forwards every chunk after the proxy's delay.
	Delay
	// Blackhole keeps connections open and accepts new ones, but drops every
	// byte in both directions and never sends FIN or RST: a network that died
	// silently. Peers only find out through their own timeouts or keepalives.
	Blackhole
	// Refuse resets new connections as soon as they are accepted; open ones
	// keep passing.
	Refuse
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Blackhole:
		return "blackhole"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Proxy forwards connections from a loopback listener to one target address.
type Proxy struct {
	target string
	ln     net.Listener

	accepted atomic.Int64
	dropped  atomic.Int64

	mu    sync.Mutex
	mode  Mode
	delay time.Duration
	conns map[*link]struct{}

	closed chan struct{}
	wg     sync.WaitGroup
}

// link is one proxied connection: the accepted side and, once dialled, the
// target side.
type link struct {
	client, upstream net.Conn // upstream is nil for a connection accepted into a blackhole
	// broken is set once a byte was dropped: the stream on either side can
	// no longer be continued, so it is reset when the blackhole lifts.
	broken atomic.Bool

	resetOnce sync.Once
	gone      chan struct{} // closed by reset
}

func newLink(c net.Conn) *link { return &link{client: c, gone: make(chan struct{})} }

// New listens on 127.0.0.1 (a free port) and forwards to target in Pass mode.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy for %s: listen: %w", target, err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[*link]struct{}{}, closed: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listen address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Accepted counts the connections accepted so far, in any mode.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Dropped counts the bytes dropped by Blackhole so far.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Open counts the connections currently held by the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Pass forwards traffic again. Connections that lost bytes in a blackhole are
// reset, as their byte streams cannot be resumed; the rest carry on.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Delay forwards every chunk read from either side after d.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d) }

// Blackhole silently drops all traffic (see the Blackhole mode).
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Refuse resets new connections; open ones keep their mode of before (Pass).
func (p *Proxy) Refuse() { p.set(Refuse, 0) }

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	var reset []*link
	if m != Blackhole {
		for l := range p.conns {
			if l.broken.Load() {
				reset = append(reset, l)
			}
		}
	}
	p.mu.Unlock()
	for _, l := range reset {
		l.reset()
	}
}

// Cut resets (RST) every open connection at once; the mode is unchanged.
func (p *Proxy) Cut() {
	p.mu.Lock()
	all := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		all = append(all, l)
	}
	p.mu.Unlock()
	for _, l := range all {
		l.reset()
	}
}

// Close stops listening, resets every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	select {
	case <-p.closed:
		return nil
	default:
	}
	close(p.closed)
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

// current returns the mode and delay under the lock.
func (p *Proxy) current() (Mode, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient accept errors (e.g. too many open files): back off a little.
			select {
			case <-p.closed:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

// handle serves one accepted connection until both directions end.
func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	l := newLink(c)
	switch mode, _ := p.current(); mode {
	case Refuse:
		l.reset()
		return
	case Blackhole:
		// A dead network never lets the handshake through: no dial, and the
		// connection is reset once the blackhole lifts.
		l.broken.Store(true)
		if !p.track(l) {
			return
		}
		defer p.untrack(l)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			p.dropped.Add(int64(n))
			if err != nil {
				break
			}
		}
		// The client gave up; nobody else knew of it. Wait to be reset.
		<-l.gone
		return
	}
	up, err := p.dial()
	if err != nil {
		l.reset() // the target refuses, so does the proxy
		return
	}
	l.upstream = up
	if !p.track(l) {
		return
	}
	defer p.untrack(l)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, up, c) }()
	go func() { defer wg.Done(); p.pipe(l, c, up) }()
	wg.Wait()
	l.close()
}

// dial connects to the target; Close cancels a dial under way.
func (p *Proxy) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.target)
}

// track registers l unless the proxy is closing (then l is reset).
func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		l.reset()
		return false
	default:
	}
	p.conns[l] = struct{}{}
	return true
}

func (p *Proxy) untrack(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// pipe copies src to dst chunk by chunk, applying the mode of the moment to
// each chunk. It returns when src ends or fails, or dst fails.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			mode, d := p.current()
			switch {
			case mode == Blackhole || l.broken.Load():
				// Once a byte was lost the stream is corrupt, so everything
				// after it is dropped too until the link is reset.
				l.broken.Store(true)
				p.dropped.Add(int64(n))
				continue
			case mode == Delay && d > 0:
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-l.gone:
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				l.reset()
				return
			}
		}
		if rerr != nil {
			if mode, _ := p.current(); mode == Blackhole || l.broken.Load() {
				// A dead network carries no FIN or RST: the other side must
				// not learn that this one went away.
				l.broken.Store(true)
				<-l.gone
				return
			}
			if errors.Is(rerr, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite() // pass the half-close on
					return
				}
			}
			l.reset()
			return
		}
	}
}

// reset closes both sides with RST (linger 0) rather than FIN.
func (l *link) reset() {
	l.resetOnce.Do(func() { close(l.gone) })
	for _, c := range []net.Conn{l.client, l.upstream} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

func (l *link) close() {
	_ = l.client.Close()
	if l.upstream != nil {
		_ = l.upstream.Close()
	}
}
