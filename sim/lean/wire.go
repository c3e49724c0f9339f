package lean

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// wire is one network connection of a Conn, from its CONNACK until it fails: its reader
// and writer goroutines end with it.
type wire struct {
	c          *Conn
	nc         net.Conn
	rd         reader
	receiveMax uint16            // MQTT 5: the most QoS 1/2 publishes the broker takes in flight; 0: no limit said
	subIDs     bool              // MQTT 5: the broker takes subscription identifiers (see subIDs)
	aliasIn    map[uint16]string // MQTT 5: the broker's topic aliases (the reader's alone)

	mu      sync.Mutex
	pending bytes.Buffer  // packets to write; the writer takes them all at once
	full    chan struct{} // closed when pending drains below highWater; nil unless a QoS 0 publish waits
	writing bool          // the writer is writing
	dead    bool
	err     error
	spare   bytes.Buffer // the writer's: what it is writing (only the writer touches it)
	aliases aliasesOut   // MQTT 5: the aliases of the topics published on this wire

	gone      chan struct{} // closed when the wire failed
	lastWrite atomic.Int64  // nanotime of the last write
	pingSent  atomic.Int64  // nanotime of the PINGREQ not yet answered; 0: none
	done      sync.WaitGroup
}

// highWater bounds the QoS 0 packets pending on a wire: past it, a QoS 0 publish waits
// for the writer (QoS 1 and 2 are bounded by the window). keepSpare is the largest write
// buffer kept between writes.
const (
	highWater = 256 << 10
	keepSpare = 64 << 10
)

// newWire is the wire over nc, read through rd (which read its CONNACK).
func newWire(c *Conn, nc net.Conn, rd reader) *wire {
	w := &wire{c: c, nc: nc, rd: rd, gone: make(chan struct{})}
	w.rd.max = c.cfg.MaxPacket
	w.lastWrite.Store(nanotime())
	return w
}

// start runs the wire's reader: its one goroutine for good. A writer goroutine runs only
// while acknowledgements or pings wait to be written (see wake).
func (w *wire) start() {
	w.done.Add(1)
	go w.readLoop()
}

// wait waits for the reader and any writer to end, once the wire failed.
func (w *wire) wait() { w.done.Wait() }

// fail ends the wire with err (the first error counts): it closes the network
// connection, which ends the reader and writer, and tells the supervisor.
func (w *wire) fail(err error) {
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return
	}
	w.dead, w.err = true, err
	close(w.gone)
	if w.full != nil {
		close(w.full)
		w.full = nil
	}
	w.mu.Unlock()
	w.nc.Close()
	w.c.lostWire(w)
}

// wake has what is pending written by a writer goroutine of its own, unless someone is
// writing already (who then writes it too). w.mu is held. The reader, whose
// acknowledgements come here, never writes itself: it must never block on a write while
// the broker waits for it to read.
func (w *wire) wake() {
	if w.writing || w.dead || w.pending.Len() == 0 {
		return
	}
	w.writing = true
	w.done.Add(1) // the reader's count is in too until the wire is dead: see fail
	go func() {
		defer w.done.Done()
		w.drain()
	}()
}

// control appends a control packet (acknowledgement, ping, subscribe): never waits.
// It reports false when the wire is dead.
func (w *wire) control(pk *packets.Packet) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead {
		return false
	}
	if err := encodePacket(pk, &w.pending); err != nil {
		return false
	}
	w.wake()
	return true
}

// publish appends a QoS 1 or 2 PUBLISH, with its topic's alias if it has one, for the
// writer or a push; full is the same packet as kept for sending again. It reports false
// when the wire is dead.
func (w *wire) publish(pk *packets.Packet, full []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead {
		return false
	}
	if w.aliases.max == 0 {
		w.pending.Write(full)
		return true
	}
	n := w.pending.Len()
	if err := w.aliases.encodeAliased(pk, &w.pending); err != nil {
		w.pending.Truncate(n)
		w.pending.Write(full)
	}
	return true
}

// raw appends encoded packets (a QoS 1/2 publish kept for sending again), for the writer
// or a push. It reports false when the wire is dead.
func (w *wire) raw(b []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead {
		return false
	}
	w.pending.Write(b)
	return true
}

// publish0 appends a QoS 0 PUBLISH, waiting while highWater bytes are pending, and pushes
// it. It reports false when the wire is dead.
func (w *wire) publish0(ctx context.Context, pk *packets.Packet) (bool, error) {
	w.mu.Lock()
	for w.pending.Len() >= highWater && !w.dead {
		if w.full == nil {
			w.full = make(chan struct{})
		}
		full := w.full
		w.mu.Unlock()
		select {
		case <-full:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		w.mu.Lock()
	}
	if w.dead {
		w.mu.Unlock()
		return false, nil
	}
	if err := w.aliases.encodeAliased(pk, &w.pending); err != nil {
		w.mu.Unlock()
		return false, err
	}
	w.mu.Unlock()
	w.push()
	return true, nil
}

// push writes what is pending on the caller's goroutine, unless someone is writing
// already (who then writes it too): a publish costs no hand-over to the writer goroutine.
// Publishers push; the reader never does (it hands its acknowledgements to the writer, so
// that it never blocks on a write while the broker waits for it to read).
func (w *wire) push() {
	w.mu.Lock()
	if w.writing || w.dead || w.pending.Len() == 0 {
		w.mu.Unlock()
		return
	}
	w.writing = true
	w.mu.Unlock()
	w.drain()
}

// drain writes everything pending, all of it in one system call per turn, until nothing
// is; its caller set w.writing, which it clears. It reports false when the wire failed.
func (w *wire) drain() bool {
	for {
		w.mu.Lock()
		if dead := w.dead; dead || w.pending.Len() == 0 {
			w.writing = false
			w.mu.Unlock()
			return !dead
		}
		w.pending, w.spare = w.spare, w.pending
		if w.full != nil {
			close(w.full)
			w.full = nil
		}
		w.mu.Unlock()
		_, err := w.nc.Write(w.spare.Bytes())
		if w.spare.Cap() > keepSpare {
			w.spare = bytes.Buffer{}
		} else {
			w.spare.Reset()
		}
		if err != nil {
			w.mu.Lock()
			w.writing = false
			w.mu.Unlock()
			w.fail(fmt.Errorf("write: %w", err))
			return false
		}
		w.lastWrite.Store(nanotime())
	}
}

// flush waits, for at most limit, until nothing is pending or being written.
func (w *wire) flush(limit time.Duration) {
	until := time.Now().Add(limit)
	for time.Now().Before(until) {
		w.mu.Lock()
		idle := w.dead || (w.pending.Len() == 0 && !w.writing)
		w.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readLoop is the wire's reader: it decodes the broker's packets and handles them until
// the connection fails or a packet does not decode. It waits for the next packet's first
// byte in its own small frame, below which the stack is shallow: an idle connection's
// reader then keeps (after a collection shrinks it) the smallest stack.
func (w *wire) readLoop() {
	defer w.done.Done()
	if br, ok := w.rd.src.(*bufReader); ok {
		defer br.release()
	}
	for {
		b, err := w.rd.byte()
		if err == nil {
			err = w.packet(b)
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				w.c.malformed.Add(1)
			}
			w.fail(err)
			return
		}
	}
}

// packet reads and handles the rest of the packet whose first byte is b.
//
//go:noinline
func (w *wire) packet(b byte) error {
	pk, err := w.rd.rest(b)
	if err != nil {
		return err
	}
	return w.c.handle(w, &pk)
}

// connect opens a network connection, sends CONNECT and reads the CONNACK, all within the
// connect timeout; ctx aborts it. present is the CONNACK's session-present flag.
func (c *Conn) connect(ctx context.Context) (w *wire, present bool, err error) {
	nc, err := mqttconn.OpenNet(ctx, c.cfg.Options, c.broker)
	if err != nil {
		return nil, false, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	fail := func(err error) (*wire, bool, error) {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, err
	}
	if err := nc.SetDeadline(time.Now().Add(c.cfg.ConnectTimeout)); err != nil {
		return fail(err)
	}
	var buf bytes.Buffer
	if err := encodePacket(c.connectPacket(), &buf); err != nil {
		return fail(err)
	}
	if _, err := nc.Write(buf.Bytes()); err != nil {
		return fail(err)
	}
	rd := reader{src: &bufReader{src: nc}, proto: c.cfg.Protocol, max: 1 << 16}
	ack, err := rd.next()
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fail(fmt.Errorf("%w within %v", mqttconn.ErrNoAnswer, c.cfg.ConnectTimeout))
	case err != nil:
		return fail(err)
	case ack.FixedHeader.Type != packets.Connack:
		return fail(fmt.Errorf("%w: %s before CONNACK", ErrMalformed, packets.PacketNames[ack.FixedHeader.Type]))
	case ack.ReasonCode != 0:
		return fail(mqttconn.Refused(ack.ReasonCode))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	w = newWire(c, nc, rd)
	w.receiveMax = ack.Properties.ReceiveMaximum
	w.subIDs = subIDsOffered(c.cfg.Protocol, &ack)
	w.aliases.max = ack.Properties.TopicAliasMaximum
	return w, ack.SessionPresent, nil
}

// connectPacket is the CONNECT for the connection's settings.
func (c *Conn) connectPacket() *packets.Packet {
	pk := &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: c.cfg.Protocol,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: c.clientID,
			Clean:            !c.cfg.Persistent,
			Keepalive:        keepaliveSeconds(c.cfg.KeepAlive),
		},
	}
	if c.cfg.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(c.cfg.Username)
	}
	if c.cfg.Password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(c.cfg.Password)
	}
	if c.cfg.Protocol == MQTT5 {
		pk.Properties.TopicAliasMaximum = c.cfg.aliasesIn()
		if c.cfg.Persistent {
			pk.Properties.SessionExpiryInterval = c.cfg.sessionExpiry()
			pk.Properties.SessionExpiryIntervalFlag = true
		}
	}
	return pk
}

// keepaliveSeconds is the CONNECT's keepalive for d: whole seconds, rounded up (0 would
// turn the broker's check off).
func keepaliveSeconds(d time.Duration) uint16 {
	return uint16(min(max((d+time.Second-1)/time.Second, 1), 65535))
}

// reader decodes the packets a broker sends, from one buffered reader.
type reader struct {
	src   byteReader
	proto byte
	max   int
	n     int    // bytes of the remaining length read so far (see ReadByte)
	buf   []byte // reused for packets that keep nothing of their bytes
}

// ReadByte reads the remaining length's bytes for packets.DecodeLength, refusing a fifth.
func (r *reader) ReadByte() (byte, error) {
	if r.n == 4 {
		return 0, packets.ErrMalformedVariableByteInteger
	}
	r.n++
	return r.byte()
}

// byteReader is what a reader reads: a bufReader, or in tests any buffered reader.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// byte reads one byte.
func (r *reader) byte() (byte, error) { return r.src.ReadByte() }

// next reads and decodes one packet. Bytes that do not decode are ErrMalformed (never a
// panic); a failure to read is the connection's error.
func (r *reader) next() (packets.Packet, error) {
	b, err := r.byte()
	if err != nil {
		return packets.Packet{}, err
	}
	return r.rest(b)
}

// rest reads and decodes the rest of the packet whose first byte is b, as next does.
func (r *reader) rest(b byte) (pk packets.Packet, err error) {
	defer func() {
		if p := recover(); p != nil {
			pk, err = packets.Packet{}, fmt.Errorf("%w: the decoder gave up: %v", ErrMalformed, p)
		}
	}()
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r.n = 0
	n, _, err := packets.DecodeLength(r)
	var code packets.Code
	switch {
	case errors.As(err, &code):
		return pk, fmt.Errorf("%w: %w", ErrMalformed, err)
	case err != nil:
		return pk, err
	case n > r.max:
		return pk, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, n, r.max)
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = r.proto
	var body []byte
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Pingresp:
		if r.proto != MQTT5 { // nothing of these is kept: reuse a buffer
			if cap(r.buf) < n {
				r.buf = make([]byte, n)
			}
			body = r.buf[:n]
			break
		}
		fallthrough
	default:
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(r.src, body); err != nil {
		return pk, err
	}
	if err := decodePacket(&pk, body); err != nil {
		return pk, fmt.Errorf("%w: %s: %w", ErrMalformed, packets.PacketNames[pk.FixedHeader.Type], err)
	}
	return pk, nil
}

// decodePacket decodes the body of a packet a broker may send.
func decodePacket(pk *packets.Packet, body []byte) error {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return pk.ConnackDecode(body)
	case packets.Publish:
		if err := pk.PublishDecode(body); err != nil {
			return err
		}
		// PublishValidate checks a client's PUBLISH, which must not carry subscription
		// identifiers; a broker's carries those of the subscriptions it is for (MQTT 5
		// §3.3.4), so they are left out of the check.
		ids := pk.Properties.SubscriptionIdentifier
		pk.Properties.SubscriptionIdentifier = nil
		code := pk.PublishValidate(aliasMax(pk.ProtocolVersion))
		pk.Properties.SubscriptionIdentifier = ids
		if code != packets.CodeSuccess {
			return code
		}
		return nil
	case packets.Puback:
		return pk.PubackDecode(body)
	case packets.Pubrec:
		return pk.PubrecDecode(body)
	case packets.Pubrel:
		return pk.PubrelDecode(body)
	case packets.Pubcomp:
		return pk.PubcompDecode(body)
	case packets.Suback:
		return pk.SubackDecode(body)
	case packets.Unsuback:
		return pk.UnsubackDecode(body)
	case packets.Pingresp:
		return pk.PingrespDecode(body)
	case packets.Disconnect:
		return pk.DisconnectDecode(body)
	case packets.Auth:
		return pk.AuthDecode(body)
	default:
		return errors.New("not a packet a broker sends")
	}
}

// aliasMax is the highest topic alias a broker may send under protocol version proto.
func aliasMax(proto byte) uint16 {
	if proto == MQTT5 {
		return TopicAliasMax
	}
	return 0
}

// encodePacket encodes a packet the client sends.
func encodePacket(pk *packets.Packet, buf *bytes.Buffer) error {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		return pk.ConnectEncode(buf)
	case packets.Publish:
		return pk.PublishEncode(buf)
	case packets.Puback:
		return pk.PubackEncode(buf)
	case packets.Pubrec:
		return pk.PubrecEncode(buf)
	case packets.Pubrel:
		return pk.PubrelEncode(buf)
	case packets.Pubcomp:
		return pk.PubcompEncode(buf)
	case packets.Subscribe:
		return pk.SubscribeEncode(buf)
	case packets.Pingreq:
		return pk.PingreqEncode(buf)
	case packets.Disconnect:
		return pk.DisconnectEncode(buf)
	default:
		return fmt.Errorf("encode: packet type %d", pk.FixedHeader.Type)
	}
}

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()
