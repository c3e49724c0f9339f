package link

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a net.Conn whose bytes are shaped by its Link.
//
// Up (writes): each chunk waits for the link's up tokens, then is delivered to the
// underlying connection no earlier than its one-way delay after that. With a delay, Write
// returns once its chunks are queued, as a kernel send buffer would; the queue is bounded,
// so a full one blocks Write. A writer goroutine, owned by the Conn, delivers the queue.
//
// Down (reads): without a delay, Read returns at most one chunk and then waits for the
// tokens of what it read. With a delay, a reader goroutine owned by the Conn reads the
// underlying connection, waits for tokens, stamps each chunk with its arrival time plus the
// one-way delay and queues it (bounded: a full queue stops reading, and TCP flow control
// pushes back on the peer); Read hands out chunks once their time has come.
//
// Delivery times are monotonic in each direction, so jitter never reorders bytes. Close
// flushes queued writes (for at most their delay plus a second, so a DISCONNECT still goes
// out), closes the underlying connection and waits for the Conn's goroutines.
type Conn struct {
	nc   net.Conn
	link *Link

	ctx    context.Context // token waits; cancelled when the Conn is closed or cut
	cancel context.CancelFunc

	done     chan struct{} // closed when the Conn stops: cut, failed or closed
	doneOnce sync.Once
	wg       sync.WaitGroup // reader and writer goroutines

	closed    atomic.Bool
	isCut     atomic.Bool
	failMu    sync.Mutex
	failErr   error // the writer goroutine's write error
	closeOnce sync.Once
	closeErr  error

	readDL, writeDL atomic.Int64 // deadlines in Unix ns; 0: none

	writeMu    sync.Mutex
	lastUp     time.Time  // delivery time of the last queued chunk
	wq         chan chunk // nil: up is not delayed
	closing    chan struct{}
	writerDone chan struct{}

	readMu   sync.Mutex
	rq       chan chunk // nil: down is not delayed
	head     *chunk     // next chunk for Read, possibly partly read or not yet arrived
	readErr  error      // the reader goroutine's final error, once handed out
	lastDown time.Time  // reader goroutine only
	rtimer   *time.Timer
}

type chunk struct {
	data []byte
	at   time.Time // delivery time
	err  error     // final error of the reader goroutine
}

// Wrap shapes c with p on a link of its own (so p's outages are not scheduled; use NewLink
// and Link.Wrap for those, or call Down). rng draws jitter; nil uses a fixed seed. p must be
// valid; Wrap panics otherwise.
func Wrap(c net.Conn, p Profile, rng *rand.Rand) *Conn {
	return newLink(p, rng).Wrap(c)
}

// Wrap shapes c with the link: its bytes share the link's bandwidth and an outage cuts it.
// If the link is down, the Conn is cut from the start. Closing the Conn closes c.
func (l *Link) Wrap(c net.Conn) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	sc := &Conn{nc: c, link: l, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	if l.up.delayed() {
		sc.wq = make(chan chunk, l.up.queue)
		sc.closing = make(chan struct{})
		sc.writerDone = make(chan struct{})
		sc.wg.Add(1)
		go sc.writer()
	}
	if l.down.delayed() {
		sc.rq = make(chan chunk, l.down.queue)
		sc.wg.Add(1)
		go sc.reader()
	}
	if !l.register(sc) {
		sc.cut()
	}
	return sc
}

// Link returns the Conn's link.
func (c *Conn) Link() *Link { return c.link }

// Down takes the Conn's link down for d (see Link.Down): this Conn and every other
// connection of the link are cut.
func (c *Conn) Down(d time.Duration) { c.link.Down(d) }

// cut breaks the Conn as a radio loss does.
func (c *Conn) cut() {
	c.isCut.Store(true)
	c.stop()
	c.nc.Close()
}

func (c *Conn) stop() {
	c.doneOnce.Do(func() {
		c.cancel()
		close(c.done)
	})
}

// stateErr is why the Conn no longer works, or nil.
func (c *Conn) stateErr() error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.isCut.Load():
		return ErrLinkDown
	}
	c.failMu.Lock()
	defer c.failMu.Unlock()
	return c.failErr
}

func (c *Conn) fail(err error) {
	c.failMu.Lock()
	if c.failErr == nil {
		c.failErr = err
	}
	c.failMu.Unlock()
	c.stop()
}

// opErr reports err from operation op, preferring the Conn's own state (an error of the
// underlying connection after a cut is reported as ErrLinkDown).
func (c *Conn) opErr(op string, err error) error {
	if st := c.stateErr(); st != nil {
		err = st
	}
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	oe := &net.OpError{Op: op, Addr: c.nc.RemoteAddr(), Err: err}
	if a := c.nc.LocalAddr(); a != nil {
		oe.Net, oe.Source = a.Network(), a
	}
	return oe
}

// take waits for n tokens of direction d, counting the wait.
func (c *Conn) take(ctx context.Context, d *direction, n int) error {
	if d.lim == nil {
		return nil
	}
	start := time.Now()
	err := d.lim.WaitN(ctx, n)
	waited := time.Since(start)
	d.waitNs.Add(int64(waited))
	if d.observe != nil {
		d.observe(waited)
	}
	return err
}

// deadlineCtx is the context for token waits under the deadline in dl.
func (c *Conn) deadlineCtx(dl *atomic.Int64) (context.Context, context.CancelFunc, error) {
	ns := dl.Load()
	if ns == 0 {
		return c.ctx, func() {}, nil
	}
	t := time.Unix(0, ns)
	if !time.Now().Before(t) {
		return nil, nil, os.ErrDeadlineExceeded
	}
	ctx, cancel := context.WithDeadline(c.ctx, t)
	return ctx, cancel, nil
}

// waitErr maps a failed token or queue wait to the error Write reports.
func (c *Conn) waitErr(ctx context.Context) error {
	if st := c.stateErr(); st != nil || c.ctx.Err() != nil {
		if st == nil {
			st = net.ErrClosed
		}
		return c.opErr("write", st)
	}
	// WaitN fails at once when the wait would pass the deadline.
	return c.opErr("write", os.ErrDeadlineExceeded)
}

// next returns the delivery time of a chunk sent now in direction d after one due at last.
func (c *Conn) next(d *direction, last time.Time) time.Time {
	at := time.Now().Add(c.link.delay(d))
	if at.Before(last) {
		at = last
	}
	return at
}

// Write shapes b up the link; see Conn.
func (c *Conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.stateErr(); err != nil {
		return 0, c.opErr("write", err)
	}
	d := &c.link.up
	if d.lim == nil && c.wq == nil {
		n, err := c.nc.Write(b)
		d.bytes.Add(int64(n))
		if err != nil {
			return n, c.opErr("write", err)
		}
		return n, nil
	}
	ctx, cancel, err := c.deadlineCtx(&c.writeDL)
	if err != nil {
		return 0, c.opErr("write", err)
	}
	defer cancel()
	written := 0
	for written < len(b) {
		p := b[written:min(len(b), written+d.chunk)]
		if c.take(ctx, d, len(p)) != nil {
			return written, c.waitErr(ctx)
		}
		if c.wq == nil {
			n, err := c.nc.Write(p)
			d.bytes.Add(int64(n))
			written += n
			if err != nil {
				return written, c.opErr("write", err)
			}
			continue
		}
		c.lastUp = c.next(d, c.lastUp)
		select {
		case c.wq <- chunk{data: bytes.Clone(p), at: c.lastUp}:
			written += len(p)
		case <-ctx.Done():
			return written, c.waitErr(ctx)
		}
	}
	return written, nil
}

// writer delivers queued chunks at their time until the Conn stops, or drains the queue
// when Close begins.
func (c *Conn) writer() {
	defer c.wg.Done()
	defer close(c.writerDone)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case ch := <-c.wq:
			if !c.deliver(t, ch) {
				return
			}
		case <-c.closing:
			for {
				select {
				case ch := <-c.wq:
					if !c.deliver(t, ch) {
						return
					}
				default:
					return
				}
			}
		case <-c.done:
			return
		}
	}
}

func (c *Conn) deliver(t *time.Timer, ch chunk) bool {
	if wait := time.Until(ch.at); wait > 0 {
		t.Reset(wait)
		select {
		case <-t.C:
		case <-c.done:
			return false
		}
	}
	n, err := c.nc.Write(ch.data)
	c.link.up.bytes.Add(int64(n))
	if err != nil {
		c.fail(err)
		return false
	}
	return true
}

// reader reads the underlying connection into the delay queue until it fails or the Conn
// stops.
func (c *Conn) reader() {
	defer c.wg.Done()
	d := &c.link.down
	// One buffer for every read; the queue gets a copy of what was read, which for MQTT
	// traffic is far smaller than a chunk (BenchmarkLinks: a fresh chunk per read cost a
	// wifi link 12.5 kB of garbage per 128-byte message). The buffer starts small and
	// doubles whenever a read fills it, up to a chunk, so an idle or lightly used link
	// holds 2 kB rather than a chunk (64 kB for lan) while bulk transfers still read
	// whole chunks.
	buf := make([]byte, min(d.chunk, initialReadBuf))
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			d.bytes.Add(int64(n))
			if c.take(c.ctx, d, n) != nil {
				return
			}
			c.lastDown = c.next(d, c.lastDown)
			select {
			case c.rq <- chunk{data: bytes.Clone(buf[:n]), at: c.lastDown}:
			case <-c.done:
				return
			}
			if n == len(buf) && n < d.chunk {
				buf = make([]byte, min(2*n, d.chunk))
			}
		}
		if err != nil {
			c.lastDown = c.next(d, c.lastDown) // a FIN crosses the link too
			select {
			case c.rq <- chunk{err: err, at: c.lastDown}:
			case <-c.done:
			}
			return
		}
	}
}

// Read shapes the link's down direction; see Conn. A Read without delay may overrun its
// deadline by the time the tokens for one chunk take.
func (c *Conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.stateErr(); err != nil {
		return 0, c.opErr("read", err)
	}
	d := &c.link.down
	if c.rq == nil {
		if d.lim != nil && len(b) > d.chunk {
			b = b[:d.chunk]
		}
		n, err := c.nc.Read(b)
		if n > 0 {
			d.bytes.Add(int64(n))
			c.take(c.ctx, d, n) // the bytes are read: hand them out even if cut meanwhile
		}
		if err != nil && err != io.EOF {
			return n, c.opErr("read", err)
		}
		return n, err
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	var deadline <-chan time.Time
	if ns := c.readDL.Load(); ns != 0 {
		wait := time.Until(time.Unix(0, ns))
		if wait <= 0 {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		dt := time.NewTimer(wait)
		defer dt.Stop()
		deadline = dt.C
	}
	if c.head == nil {
		select {
		case ch := <-c.rq:
			c.head = &ch
		case <-c.done:
			return 0, c.opErr("read", c.stateErr())
		case <-deadline:
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
	}
	if wait := time.Until(c.head.at); wait > 0 {
		if c.rtimer == nil {
			c.rtimer = time.NewTimer(wait)
		} else {
			c.rtimer.Reset(wait)
		}
		select {
		case <-c.rtimer.C:
		case <-c.done:
			c.rtimer.Stop()
			return 0, c.opErr("read", c.stateErr())
		case <-deadline:
			c.rtimer.Stop()
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
	}
	if c.head.err != nil {
		c.readErr = c.head.err
		if c.readErr != io.EOF {
			c.readErr = c.opErr("read", c.readErr)
		}
		c.head = nil
		return 0, c.readErr
	}
	n := copy(b, c.head.data)
	c.head.data = c.head.data[n:]
	if len(c.head.data) == 0 {
		c.head = nil
	}
	return n, nil
}

// Close flushes queued writes, closes the underlying connection and waits for the Conn's
// goroutines. It leaves the link up.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		cut := c.isCut.Load()
		c.closed.Store(true)
		c.cancel() // abort token waits
		if c.wq != nil {
			c.writeMu.Lock() // no Write queues after this
			close(c.closing)
			c.writeMu.Unlock()
			linger := time.NewTimer(c.link.up.latency + c.link.up.jitter + time.Second)
			select {
			case <-c.writerDone:
			case <-c.done:
			case <-linger.C:
			}
			linger.Stop()
		}
		c.stop()
		err := c.nc.Close()
		if !cut {
			c.closeErr = err
		}
		c.wg.Wait()
		c.link.forget(c)
	})
	return c.closeErr
}

// LocalAddr returns the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline. It bounds the wait for the underlying connection
// and for delayed data.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(unixNano(t))
	if c.rq == nil {
		return c.nc.SetReadDeadline(t)
	}
	return nil // the reader goroutine reads without one
}

// SetWriteDeadline sets the write deadline. It bounds the waits for bandwidth and for room
// in the delay queue; a chunk already queued is delivered regardless.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(unixNano(t))
	if c.wq == nil {
		return c.nc.SetWriteDeadline(t)
	}
	return nil // the writer goroutine writes without one
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
