package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
)

// Close waits this long for a child to exit on the EOF of its stdin, then as
// long again after SIGTERM, before SIGKILL (as mcp-go's own stdio transport).
const (
	stdioGrace    = 2 * time.Second
	stdioTermWait = 3 * time.Second
	// groupTermWait is how long what the child left behind in its process
	// group gets after SIGTERM, once the child itself is gone, before SIGKILL.
	groupTermWait = time.Second
)

// stdioTransport is mcp-go's stdio transport over a child we start, kill and
// reap ourselves: mcp-go reads a child's stdout a line at a time with no
// bound, so a child printing one endless line would grow the data plane
// without limit. Here mcp-go reads through lineBound, which fails the
// connection (and kills the child) at a line of more than max bytes.
type stdioTransport struct {
	*transport.Stdio
	proc *stdioProc
}

// newStdioTransport prepares (does not start) the child of server: command
// with args, inheriting base (the scrubbed environment) plus env, in dir.
func newStdioTransport(server, command string, args, base, env []string, dir string, maxLine int64, logger *slog.Logger) (*stdioTransport, error) {
	cmd := exec.Command(command, args...)
	// Never nil: a nil Env would make exec inherit everything.
	cmd.Env = append(append(make([]string, 0, len(base)+len(env)), base...), env...)
	cmd.Dir = dir
	ownGroup(cmd)
	p := &stdioProc{server: server, cmd: cmd, exited: make(chan struct{})}
	var files []*os.File
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range files {
				_ = f.Close()
			}
			return nil, fmt.Errorf("create stdio pipe: %w", err)
		}
		files = append(files, r, w)
	}
	p.stdinR, p.stdinW = files[0], files[1]
	p.stdoutR, p.stdoutW = files[2], files[3]
	p.stderrR, p.stderrW = files[4], files[5]
	out := &lineBound{r: p.stdoutR, max: maxLine, fail: p.tooLarge}
	tr := transport.NewIO(out, p.stdinW, p.stderrR)
	transport.WithCommandLogger(logger)(tr) // NewIO takes no options
	return &stdioTransport{Stdio: tr, proc: p}, nil
}

// onFail sets what is told first when the child's output breaks the bound
// (before mcp-go sees the read fail), so the connection dies of that reason.
// Set before Start.
func (t *stdioTransport) onFail(f func(error)) { t.proc.onFail = f }

// Start starts the child, then mcp-go's reader of its stdout. ctx owns the
// child: it is killed when ctx ends.
func (t *stdioTransport) Start(ctx context.Context) error {
	if err := t.proc.start(ctx); err != nil {
		return err
	}
	return t.Stdio.Start(ctx)
}

// Close closes the child's stdin and our end of its stderr (mcp-go), then
// waits for the child to exit, killing it if it does not, and reaps it.
func (t *stdioTransport) Close() error {
	err := t.Stdio.Close()
	if perr := t.proc.stop(); perr != nil && err == nil {
		err = perr
	}
	return err
}

// stdioProc is the child of a stdioTransport and the pipes to it.
type stdioProc struct {
	server string
	cmd    *exec.Cmd
	onFail func(error)

	stdinR, stdoutW, stderrW *os.File // the child's ends: closed once it started
	stdinW, stderrR          *os.File // ours, given to mcp-go, which closes them
	stdoutR                  *os.File // ours, closed once the child was reaped

	mu        sync.Mutex
	started   bool
	stopped   bool
	stopKill  func() bool // the ctx watch of a started child
	exited    chan struct{}
	waitErr   error // written before exited is closed
	childOnce sync.Once
}

func (p *stdioProc) closeChildEnds() {
	p.childOnce.Do(func() {
		_ = p.stdinR.Close()
		_ = p.stdoutW.Close()
		_ = p.stderrW.Close()
	})
}

func (p *stdioProc) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return transport.ErrTransportClosed
	}
	// *os.File ends are handed to the child as they are: no copying
	// goroutines of os/exec to wait for.
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = p.stdinR, p.stdoutW, p.stderrW
	err := p.cmd.Start()
	p.closeChildEnds()
	if err != nil {
		return fmt.Errorf("failed to start command: %w", err)
	}
	p.started = true
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	p.stopKill = context.AfterFunc(ctx, p.kill)
	return nil
}

// kill sends SIGKILL to a started child and its process group.
func (p *stdioProc) kill() { _ = signalGroup(p.cmd.Process, syscall.SIGKILL) }

// tooLarge fails the connection: called by lineBound at the first line past
// its bound, it tells onFail and kills the child (which would keep writing).
func (p *stdioProc) tooLarge(max int64) error {
	err := fmt.Errorf("stdio backend %s: a message exceeded %d bytes", p.server, max)
	if p.onFail != nil {
		p.onFail(err)
	}
	p.kill()
	return err
}

// stop ends and reaps the child; mcp-go has closed its stdin already, so a
// well-behaved child is exiting.
func (p *stdioProc) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	p.closeChildEnds()
	if !p.started {
		_ = p.stdoutR.Close()
		return nil
	}
	p.stopKill()
	exited := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.exited:
			return true
		case <-t.C:
			return false
		}
	}
	var err error
	switch {
	case exited(stdioGrace):
	case signalGroup(p.cmd.Process, syscall.SIGTERM) == nil && exited(stdioTermWait):
	default:
		p.kill()
		if !exited(stdioTermWait) {
			err = transport.ErrChildShutdownTimeout
		}
	}
	p.reapGroup()
	// Closing our end also ends mcp-go's reader when a grandchild still
	// holds the child's stdout open.
	_ = p.stdoutR.Close()
	if err != nil {
		return err
	}
	return p.waitErr
}

// reapGroup ends what the exited child left running in its process group
// (a grandchild it spawned and did not wait for): SIGTERM, then SIGKILL
// after groupTermWait. Orphans are reparented to init, not to us, so
// "gone" is the kernel saying no process of the group is left.
func (p *stdioProc) reapGroup() {
	if !groupAlive(p.cmd.Process) {
		return
	}
	_ = signalGroup(p.cmd.Process, syscall.SIGTERM)
	deadline := time.NewTimer(groupTermWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for groupAlive(p.cmd.Process) {
		select {
		case <-deadline.C:
			_ = signalGroup(p.cmd.Process, syscall.SIGKILL)
			return
		case <-tick.C:
		}
	}
}

// lineBound reads the child's stdout and fails at a line (a message) of more
// than max bytes, before mcp-go's line read could hold more of it: past the
// bound nothing more is read.
type lineBound struct {
	r    io.Reader
	max  int64
	line int64 // bytes of the current line so far
	fail func(max int64) error
	err  error
}

func (b *lineBound) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	q := p[:n]
	for {
		i := bytes.IndexByte(q, '\n')
		if i < 0 {
			b.line += int64(len(q))
			break
		}
		if b.line+int64(i) > b.max {
			b.line = b.max + 1
			break
		}
		b.line, q = 0, q[i+1:]
	}
	if b.line > b.max {
		b.err = b.fail(b.max)
		return 0, b.err
	}
	if err != nil && errors.Is(err, os.ErrClosed) {
		return n, io.EOF // our own close of a reaped child's pipe
	}
	return n, err
}
