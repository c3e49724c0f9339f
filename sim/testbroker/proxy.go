package testbroker

// This file is the fault-injecting MQTT proxy; testbroker.go starts mosquitto.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Direction is one way through a Proxy.
type Direction int

const (
	Upstream   Direction = iota // client → broker
	Downstream                  // broker → client
)

func (d Direction) String() string {
	if d == Upstream {
		return "upstream"
	}
	return "downstream"
}

// MaxPacketSize bounds one MQTT packet (fixed header included) through a Proxy; a larger
// one is treated as a malformed stream.
const MaxPacketSize = 1 << 20

// DefaultSwapWait is how long a PUBLISH held by Rules.SwapEvery waits for the next PUBLISH
// when Rules.SwapWait is zero.
const DefaultSwapWait = 100 * time.Millisecond

// Rules are the faults a Proxy injects in one direction. The zero value forwards
// everything at once. The "every N-th" rules count the PUBLISH packets of that direction
// across all connections of the proxy, from 1, starting afresh at each SetRules; N ≤ 0
// turns a rule off. A PUBLISH gets at most one fault: drop before duplicate before swap.
// Only the connection that a rule's counter lands on is affected, so with several clients
// in one direction which of them loses a message depends on their interleaving.
type Rules struct {
	// Delay holds every packet of the direction (of any type) until at least Delay after
	// the proxy read it, keeping order: a packet read at t goes out at the later of
	// t+Delay and the time the previous packet went out. The delay applies to packets
	// read after SetRules.
	Delay time.Duration
	// DropEvery discards every N-th PUBLISH. Meant for QoS 0: a dropped QoS 1 or 2
	// PUBLISH is never acknowledged, and the sender redelivers it only after reconnecting.
	DropEvery int
	// DuplicateEvery sends every N-th PUBLISH twice, byte for byte: a QoS 1 or 2 copy
	// carries the same packet id (and no DUP flag), so the receiver acknowledges it twice.
	DuplicateEvery int
	// SwapEvery holds every N-th PUBLISH and sends it right after the next PUBLISH of the
	// same connection, swapping the pair; other packets pass meanwhile. A PUBLISH that
	// comes while one is held is never held itself (so SwapEvery 1 swaps 2,1 then 4,3).
	// If no next PUBLISH is due within SwapWait of the held one, it goes out alone.
	SwapEvery int
	// SwapWait bounds a swap's hold; zero means DefaultSwapWait.
	SwapWait time.Duration
	// CorruptEvery garbles every N-th PUBLISH: its topic length becomes 65535, more than
	// the packet holds, so the receiver cannot decode it (a broker gone wrong).
	CorruptEvery int
}

// Stats counts what a Proxy did in one direction since it started. Counts of copies:
// every PUBLISH seen makes one copy (none if dropped, two if duplicated), and each copy
// is eventually either forwarded or lost, so once the proxy is idle
// Seen - Dropped + Duplicated == Forwarded + Lost.
type Stats struct {
	Accepted     uint64 // client connections accepted (the same in both directions)
	Seen         uint64 // PUBLISH packets read
	Forwarded    uint64 // PUBLISH copies written to the peer (duplicates count twice)
	Dropped      uint64 // PUBLISH packets discarded by DropEvery
	Duplicated   uint64 // PUBLISH packets sent twice by DuplicateEvery
	Swapped      uint64 // held PUBLISH packets sent after the next PUBLISH
	SwapTimeouts uint64 // held PUBLISH packets sent alone (no next PUBLISH within SwapWait)
	// Lost counts PUBLISH copies read but not written because their connection pair was
	// closed first (CutAll, Close, a write error, the other side resetting). A copy counted
	// as Forwarded was written to the socket; the kernel may still discard it on a cut.
	Lost      uint64
	Malformed uint64 // connections closed because this direction's stream was not MQTT
	Corrupted uint64 // PUBLISH packets garbled by CorruptEvery
}

// Proxy relays MQTT between clients and an upstream broker, injecting faults set by
// SetRules, Pause and CutAll. Every accepted client connection gets its own upstream
// connection. Its methods are safe for concurrent use.
type Proxy struct {
	upstream string
	ln       net.Listener // nil in unit tests that call relay directly
	accepted atomic.Uint64
	dirs     [2]direction

	ctx    context.Context // canceled by Close; bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy started

	mu     sync.Mutex
	pairs  map[*pair]struct{}
	closed bool
}

// direction is the rules, pause gate and counters of one direction.
type direction struct {
	rules atomic.Pointer[ruleState]
	gate  atomic.Pointer[chan struct{}] // closed while running, open while paused

	seen, forwarded, dropped, duplicated, swapped, swapTimeouts, lost, malformed, corrupted atomic.Uint64
}

// ruleState is one SetRules call: the rules and the PUBLISH count they apply to.
type ruleState struct {
	Rules
	n atomic.Uint64
}

// pair is one client connection and its upstream connection.
type pair struct {
	client, broker net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
}

func (pr *pair) close() {
	pr.once.Do(func() {
		close(pr.done)
		pr.client.Close()
		pr.broker.Close()
	})
}

// item is one packet queued for a direction's writer.
type item struct {
	raw     []byte
	due     time.Time // not before Delay after it was read
	publish bool
	hold    bool          // SwapEvery chose it
	wait    time.Duration // its SwapWait
}

// StartProxy starts a Proxy to upstream ("host:port") on a free port of 127.0.0.1 and
// closes it when the test ends.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := newProxy(upstream)
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func newProxy(upstream string) *Proxy {
	p := &Proxy{upstream: upstream, pairs: map[*pair]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for i := range p.dirs {
		p.dirs[i].rules.Store(new(ruleState))
		open := make(chan struct{})
		close(open)
		p.dirs[i].gate.Store(&open)
	}
	return p
}

// Addr is the proxy's listen address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's URL for MQTT clients, "tcp://127.0.0.1:port".
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// SetRules replaces the rules of direction d, restarting their PUBLISH count. A packet's
// rules are chosen when it is read, before Stats counts it as Seen: once Seen includes a
// packet, SetRules no longer changes what happens to it.
func (p *Proxy) SetRules(d Direction, r Rules) {
	p.dirs[d].rules.Store(&ruleState{Rules: r})
}

// Pause stops reading and forwarding in direction d, on every connection: new bytes wait
// in the kernel's buffers (then the sender's), as behind a stuck peer, and nothing is
// lost. A packet already being read is read, then held. Resume undoes it.
func (p *Proxy) Pause(d Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g := *p.dirs[d].gate.Load(); isClosed(g) {
		paused := make(chan struct{})
		p.dirs[d].gate.Store(&paused)
	}
}

// Resume restarts direction d after Pause; held packets whose delay has passed go out
// at once, in order.
func (p *Proxy) Resume(d Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g := *p.dirs[d].gate.Load(); !isClosed(g) {
		close(g)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// CutAll closes every current connection pair at once, on both sides, as a broker or
// network failure would; packets queued in the proxy are lost (Stats.Lost). The listener
// stays, so clients can reconnect.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.close()
	}
}

// Stats returns the counters of direction d.
func (p *Proxy) Stats(d Direction) Stats {
	c := &p.dirs[d]
	return Stats{
		Accepted: p.accepted.Load(), Seen: c.seen.Load(), Forwarded: c.forwarded.Load(),
		Dropped: c.dropped.Load(), Duplicated: c.duplicated.Load(), Swapped: c.swapped.Load(),
		SwapTimeouts: c.swapTimeouts.Load(), Lost: c.lost.Load(), Malformed: c.malformed.Load(),
		Corrupted: c.corrupted.Load(),
	}
}

// Close stops the listener, closes every connection pair and waits for the proxy's
// goroutines to end. It is called when the test ends and is safe to call more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for pr := range p.pairs {
		pr.close()
	}
	p.mu.Unlock()
	p.cancel()
	if p.ln != nil {
		p.ln.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select { // a transient error, such as too many open files
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			b, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.upstream)
			if err != nil {
				c.Close()
				return
			}
			p.relay(c, b)
		}()
	}
}

// relay runs the pair client–broker until both directions end, then closes it.
func (p *Proxy) relay(client, broker net.Conn) {
	pr := &pair{client: client, broker: broker, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, d := range []Direction{Upstream, Downstream} {
		src, dst := client, broker
		if d == Downstream {
			src, dst = broker, client
		}
		q := make(chan item, 1024)
		wg.Go(func() { p.read(d, pr, src, q) })
		wg.Go(func() { p.write(d, pr, dst, q) })
	}
	wg.Wait()
	pr.close()
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
}

// wait blocks while direction d is paused; false means the pair closed meanwhile.
func (p *Proxy) wait(d Direction, pr *pair) bool {
	select {
	case <-*p.dirs[d].gate.Load():
		return true
	case <-pr.done:
		return false
	}
}

// read reads packets from src, applies the rules of d and queues what is to be sent on
// q, which it closes when it ends. At the end of the stream (EOF between packets) the
// writer flushes the queue; on any other error the pair is closed at once.
func (p *Proxy) read(d Direction, pr *pair, src net.Conn, q chan<- item) {
	defer close(q)
	c := &p.dirs[d]
	br := bufio.NewReaderSize(src, 32<<10)
	send := func(it item) bool {
		select {
		case q <- it:
			return true
		case <-pr.done:
			if it.publish {
				c.lost.Add(1)
			}
			return false
		}
	}
	for p.wait(d, pr) {
		raw, err := readPacket(br, MaxPacketSize)
		if err != nil {
			if errors.Is(err, errMalformed) {
				c.malformed.Add(1)
			}
			if err != io.EOF {
				pr.close()
			}
			return
		}
		st := c.rules.Load()
		it := item{raw: raw, due: time.Now().Add(st.Delay), publish: raw[0]>>4 == publishType}
		if !it.publish {
			if !send(it) {
				return
			}
			continue
		}
		c.seen.Add(1)
		n := int(st.n.Add(1))
		every := func(k int) bool { return k > 0 && n%k == 0 }
		switch {
		case every(st.DropEvery):
			c.dropped.Add(1)
			continue
		case every(st.DuplicateEvery):
			c.duplicated.Add(1)
			if !send(it) {
				c.lost.Add(1) // the second copy
				return
			}
		case every(st.SwapEvery):
			it.hold, it.wait = true, st.SwapWait
			if it.wait <= 0 {
				it.wait = DefaultSwapWait
			}
		case every(st.CorruptEvery):
			corrupt(it.raw)
			c.corrupted.Add(1)
		}
		if !send(it) {
			return
		}
	}
}

// corrupt sets the topic length of the PUBLISH raw to 65535.
func corrupt(raw []byte) {
	i := 1
	for i < len(raw) && raw[i]&0x80 != 0 { // the remaining length's bytes
		i++
	}
	if i+2 < len(raw) {
		raw[i+1], raw[i+2] = 0xFF, 0xFF
	}
}

// write sends the packets of q to dst, each when due, doing the swaps. When q ends it
// flushes and half-closes dst (or closes the pair if dst cannot half-close); when the
// pair closes first it counts what it had not sent as lost.
func (p *Proxy) write(d Direction, pr *pair, dst net.Conn, q <-chan item) {
	c := &p.dirs[d]
	var (
		cur       *item // taken from q, not sent yet
		held      *item // a PUBLISH held by SwapEvery
		heldUntil time.Time
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// sleep waits until t; false means the pair closed.
	sleep := func(t time.Time) bool {
		timer.Reset(time.Until(t))
		defer timer.Stop()
		select {
		case <-timer.C:
			return true
		case <-pr.done:
			return false
		}
	}
	send := func(it *item) bool {
		if !p.wait(d, pr) {
			return false
		}
		if _, err := dst.Write(it.raw); err != nil {
			pr.close()
			return false
		}
		if it.publish {
			c.forwarded.Add(1)
		}
		return true
	}
	// release sends the held packet, counted as swapped or as timed out.
	release := func(swapped bool) bool {
		if !send(held) {
			return false
		}
		held = nil
		if swapped {
			c.swapped.Add(1)
		} else {
			c.swapTimeouts.Add(1)
		}
		return true
	}
loop:
	for {
		var expired <-chan time.Time
		if held != nil {
			timer.Reset(time.Until(heldUntil))
			expired = timer.C
		}
		select {
		case it, more := <-q:
			timer.Stop()
			if !more { // the source ended cleanly: flush and pass the end on
				if held != nil && !release(false) {
					break loop
				}
				if hc, ok := dst.(interface{ CloseWrite() error }); !ok || hc.CloseWrite() != nil {
					pr.close()
				}
				return
			}
			cur = &it
		case <-expired:
			if !release(false) {
				break loop
			}
			continue
		case <-pr.done:
			break loop
		}
		if held != nil && heldUntil.Before(cur.due) && !(sleep(heldUntil) && release(false)) {
			break
		}
		if !sleep(cur.due) {
			break
		}
		if cur.hold && held == nil {
			held, heldUntil, cur = cur, cur.due.Add(cur.wait), nil
			continue
		}
		if !send(cur) {
			break
		}
		wasPublish := cur.publish
		cur = nil
		if held != nil && wasPublish && !release(true) {
			break
		}
	}
	// The pair closed: count every PUBLISH copy not written. The reader closes q once it
	// sees the pair closed.
	for _, it := range []*item{cur, held} {
		if it != nil && it.publish {
			c.lost.Add(1)
		}
	}
	for it := range q {
		if it.publish {
			c.lost.Add(1)
		}
	}
}

const publishType = 3

var errMalformed = errors.New("malformed MQTT packet")

// readPacket reads one MQTT control packet, returning its bytes unchanged: the fixed
// header byte, the remaining length (a varint of 1 to 4 bytes, MQTT 3.1.1 §2.2.3) and
// that many bytes. It returns io.EOF only at the end of the stream between packets; a
// longer varint, a packet of type 0 (reserved) or a packet over max is errMalformed.
func readPacket(r *bufio.Reader, max int) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if first>>4 == 0 {
		return nil, fmt.Errorf("%w: reserved packet type 0", errMalformed)
	}
	hdr := []byte{first}
	length, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return nil, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed)
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		hdr = append(hdr, b)
		length += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if len(hdr)+length > max {
		return nil, fmt.Errorf("%w: %d bytes, over %d", errMalformed, len(hdr)+length, max)
	}
	pkt := make([]byte, len(hdr)+length)
	copy(pkt, hdr)
	if _, err := io.ReadFull(r, pkt[len(hdr):]); err != nil {
		return nil, unexpected(err)
	}
	return pkt, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
