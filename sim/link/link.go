package link

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrLinkDown is the error of a read, write or dial on a link that is down. Connections cut
// by an outage stay broken after the link comes back; the client reconnects.
var ErrLinkDown = errors.New("link down")

// Token bucket sizing. rate.Limiter.WaitN refuses n above the burst, so reads and writes are
// split into chunks of at most the burst. The burst also absorbs timer lateness: Go timers
// fire ~1 ms late or more under load, and tokens that accrue meanwhile are lost once the
// bucket is full, so a burst worth less than ~2 ms of the rate under-delivers at high rates.
// Measured with BenchmarkBurstWindow (loopback, 2 cores) at 10 and 100 MB/s, achieved vs
// target: idle, a 0.5 ms burst loses 10-11 %, 1 ms 0.5-0.8 %, 2 ms and 5 ms under 0.1 %;
// with both cores busy in other processes, 1 ms loses 2-5 %, 2 ms 0.8-2.9 %, 5 ms 0.1 %.
// Hence burstWindow = 5 ms. At low rates the burst is at least minBurst, an Ethernet MTU,
// so a small MQTT packet is never split and a read returns a useful amount; the cost is that
// an idle link sends its first 1500 bytes at once rather than at the line rate.
var burstWindow = 5 * time.Millisecond

const (
	minBurst = 1500
	// maxChunk caps one read or queued write (and its buffer); waiting for tokens in
	// chunks smaller than the burst does not lower the rate.
	maxChunk = 64 << 10
	// initialReadBuf is the size of a delayed Conn's first read buffer; see Conn.reader.
	initialReadBuf = 2 << 10
)

// direction is the shaping of one direction of a link, shared by its connections.
type direction struct {
	lim             *rate.Limiter // nil: unlimited
	chunk           int           // bytes per token wait, read or queued write
	latency, jitter time.Duration
	queue           int // capacity of a connection's delay queue, in chunks

	bytes  atomic.Int64 // bytes that crossed the underlying connections
	waitNs atomic.Int64 // time spent waiting for tokens
	// observe, if set, is told of every wait for tokens (see SetWaitObserver).
	observe func(time.Duration)
}

func (d *direction) init(bytesPerSec float64, latency, jitter time.Duration, now time.Time) {
	d.latency, d.jitter = latency, jitter
	d.chunk = maxChunk
	if bytesPerSec > 0 {
		burst := max(minBurst, int(math.Ceil(bytesPerSec*burstWindow.Seconds())))
		d.lim = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
		d.lim.AllowN(now, burst) // start empty: the rate holds from the first byte
		d.chunk = min(burst, maxChunk)
	}
	if d.delayed() {
		// Enough room for the chunks in flight over latency+jitter at full rate (the
		// bandwidth-delay product), like a kernel send buffer; bounded so a slow link
		// pushes back on the writer.
		d.queue = 64
		if bytesPerSec > 0 {
			perChunk := float64(d.chunk) / bytesPerSec
			d.queue = min(256, max(8, int(math.Ceil((latency+jitter).Seconds()/perChunk))+4))
		}
	}
}

func (d *direction) delayed() bool { return d.latency > 0 || d.jitter > 0 }

// Stats are a link's counters since NewLink, summed over all its connections.
type Stats struct {
	BytesUp, BytesDown int64         // bytes written to / read from the underlying connections
	WaitUp, WaitDown   time.Duration // time spent waiting for bandwidth (summed over connections)
	Outages            int64         // times the link went down (scheduled or by Down)
	Dials              int64         // connections Dial opened: the first, then one per reconnect
}

// Link is one shaped link. All connections wrapped or dialled through it share its
// bandwidth, and an outage cuts them all. Its methods are safe for concurrent use.
type Link struct {
	profile  Profile
	up, down direction

	rngMu sync.Mutex
	rng   *rand.Rand

	mu        sync.Mutex
	conns     map[*Conn]struct{}
	downUntil time.Time
	closed    bool

	outages atomic.Int64
	dials   atomic.Int64
	dialer  net.Dialer
	stop    chan struct{}
	wg      sync.WaitGroup // the outage scheduler
}

// NewLink returns a link shaped by p, which must be valid (see Validate; NewLink panics
// otherwise, as scenarios are validated when loaded). rng draws jitter and outage intervals;
// nil uses a fixed seed. If p has outages, a goroutine schedules them until Close.
func NewLink(p Profile, rng *rand.Rand) *Link {
	l := newLink(p, rng)
	if p.OutageEvery > 0 && p.OutageFor > 0 {
		l.wg.Add(1)
		go l.schedule()
	}
	return l
}

func newLink(p Profile, rng *rand.Rand) *Link {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 2))
	}
	l := &Link{profile: p, rng: rng, conns: map[*Conn]struct{}{}, stop: make(chan struct{})}
	now := time.Now()
	l.up.init(p.UpBytesPerSec, p.Latency, p.Jitter, now)
	l.down.init(p.DownBytesPerSec, p.Latency, p.Jitter, now)
	return l
}

// Profile returns the link's profile.
func (l *Link) Profile() Profile { return l.profile }

// Stats returns the link's counters; each is read atomically.
func (l *Link) Stats() Stats {
	return Stats{
		BytesUp:   l.up.bytes.Load(),
		BytesDown: l.down.bytes.Load(),
		WaitUp:    time.Duration(l.up.waitNs.Load()),
		WaitDown:  time.Duration(l.down.waitNs.Load()),
		Outages:   l.outages.Load(),
		Dials:     l.dials.Load(),
	}
}

// Up reports whether the link is up: not in an outage and not closed.
func (l *Link) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && !time.Now().Before(l.downUntil)
}

// Down takes the link down for d, as a radio loss does: every connection of the link is cut
// at once (their reads and writes fail with ErrLinkDown, data in flight is lost) and Dial
// refuses until d has passed. Overlapping outages extend each other.
func (l *Link) Down(d time.Duration) {
	l.mu.Lock()
	if until := time.Now().Add(d); until.After(l.downUntil) {
		l.downUntil = until
	}
	cut := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		cut = append(cut, c)
	}
	clear(l.conns)
	l.mu.Unlock()
	l.outages.Add(1)
	for _, c := range cut {
		c.cut()
	}
}

// Close stops the outage scheduler, waiting for it, and makes Dial fail. Connections
// already open stay open: their owners close them.
func (l *Link) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// schedule runs the outages of the profile until Close.
func (l *Link) schedule() {
	defer l.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	sleep := func(d time.Duration) bool {
		t.Reset(d)
		select {
		case <-t.C:
			return true
		case <-l.stop:
			return false
		}
	}
	for {
		every := l.profile.OutageEvery
		if !l.profile.OutageFixed {
			l.rngMu.Lock()
			every = time.Duration(l.rng.ExpFloat64() * float64(every))
			l.rngMu.Unlock()
		}
		if !sleep(every) {
			return
		}
		l.Down(l.profile.OutageFor)
		if !sleep(l.profile.OutageFor) {
			return
		}
	}
}

// delay draws one chunk's one-way delay in direction d.
func (l *Link) delay(d *direction) time.Duration {
	if d.jitter <= 0 {
		return d.latency
	}
	l.rngMu.Lock()
	j := l.rng.Int64N(int64(d.jitter) + 1)
	l.rngMu.Unlock()
	return d.latency + time.Duration(j)
}

// register adds c to the link's connections; false if the link is down (c must be cut).
func (l *Link) register(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.downUntil) {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) forget(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *Link) dialErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return net.ErrClosed
	case time.Now().Before(l.downUntil):
		return ErrLinkDown
	}
	return nil
}

// SetWaitObserver has up and down told of every wait for bandwidth, in each direction, for
// a histogram of waits. Call it before the link carries bytes.
func (l *Link) SetWaitObserver(up, down func(time.Duration)) {
	l.up.observe, l.down.observe = up, down
}

// SetLocalAddr makes Dial open connections from local (nil: any), for spreading many
// connections over several source addresses. Call it before the first Dial.
func (l *Link) SetLocalAddr(local net.Addr) { l.dialer.LocalAddr = local }

// Dial connects to addr like net.Dialer.DialContext and wraps the connection in the link.
// It fails with ErrLinkDown while the link is down (and if it goes down during the dial),
// and takes a round trip of the link's latency for the TCP handshake. Its signature fits
// WebSocket dialers' NetDialContext; for TLS, wrap the result in tls.Client so the TLS
// bytes are shaped too.
func (l *Link) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := l.dialErr(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	nc, err := l.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	l.dials.Add(1)
	c := l.Wrap(nc)
	if rtt := l.delay(&l.up) + l.delay(&l.down); rtt > 0 {
		t := time.NewTimer(rtt)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-c.done:
		}
		t.Stop()
	}
	err = c.stateErr()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: nc.RemoteAddr(), Err: err}
	}
	return c, nil
}
