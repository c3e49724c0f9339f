package lean

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// flight is a QoS 1 or 2 publish the broker has not completed.
type flight struct {
	pkt   bytes.Buffer // the PUBLISH as first encoded, for sending again (with DUP)
	qos   byte
	rel   bool   // QoS 2: PUBREC came and PUBREL went; waiting for PUBCOMP
	seq   uint64 // the order it was first sent in
	start int64  // nanotime when Publish sent it, for the timeout
	// waiting says a Publish waits on done for the outcome; whoever ends the wait (the
	// outcome, the timeout, or the Publish giving up) clears it, under c.mu. A flight of
	// PublishAsync has then instead, told once and cleared the same way.
	waiting bool
	done    chan error
	then    Outcome
}

// Outcome is told how a publish handed over by PublishAsync ended: nil once the broker
// completed it, or the error that ended it, as Publish would have returned it. It is told
// once, on whichever goroutine ended the publish (the connection's reader, the ticker's
// timeout, a drop or Close) with the connection's lock held: it must be quick and must
// not call the connection.
type Outcome interface {
	Outcome(err error)
}

// tell gives the flight's outcome to whoever waits for it, if anyone still does: a
// Publish on done, or PublishAsync's Outcome. c.mu is held.
func (f *flight) tell(err error) {
	switch {
	case f.then != nil:
		then := f.then
		f.then = nil
		then.Outcome(err)
	case f.waiting:
		f.waiting = false
		f.done <- err
	}
}

// flights are recycled with their buffer and channel once their Publish took a successful
// outcome: the flight is then out of the session, and nobody else holds it.
var flights = sync.Pool{New: func() any { return &flight{done: make(chan error, 1)} }}

// Publish sends one message and waits until it is complete for its QoS (QoS 0: handed to
// the connection's writer; 1: PUBACK; 2: PUBCOMP), ctx ends, the connection is closed, or
// the connect timeout passes, as mqttconn.Conn.Publish does:
//
//   - While the connection is down, Publish waits for it to come back, for at most the
//     connect timeout; if it does not, the error is mqttconn.ErrNotSent.
//   - A QoS 1 or 2 publish in flight when the connection drops fails at once with a clean
//     session; with a persistent one it is sent again (DUP) once the connection is back and
//     Publish returns when the broker acknowledges it.
//   - A QoS 0 publish pending when the connection drops is lost, as paho's are; the
//     end-to-end accounting counts it.
//
// The payload is copied: the caller may reuse it as soon as Publish returns.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return c.PublishWith(ctx, topic, payload, qos, retained, nil)
}

// PublishWith is Publish with MQTT 5 properties (nil: none), which a 3.1.1 connection does
// not send. props is read, never kept beyond the publish's flight, nor changed.
func (c *Conn) PublishWith(ctx context.Context, topic string, payload []byte, qos byte, retained bool, props *Props) error {
	pk, err := c.publishPacket(topic, payload, qos, retained)
	if err != nil {
		return err
	}
	setProps(&pk, props)
	if qos == 0 {
		return c.publish0(ctx, &pk)
	}
	f, err := c.sendInWindow(ctx, &pk, nil)
	if err != nil {
		return err
	}
	select {
	case err := <-f.done:
		if err == nil {
			flights.Put(f)
		}
		return err
	case <-ctx.Done():
		return c.abandon(f, ctx.Err())
	case <-c.life.Done():
		return c.abandon(f, errClosed)
	}
}

// PublishAsync is Publish without the wait for the broker: it returns once the publish
// is handed to the connection, having waited for room in the window if need be, and then
// tells then its outcome, once. A QoS 1 or 2 publish is handed over when it is written, or,
// with a persistent session while the connection is down, kept for the next one; a QoS 0
// publish as Publish sends it, and then is told at once. A publish that could not be handed
// over returns its error (mqttconn.ErrNotSent: nothing went out) and then is not told.
//
// Many publishes of one caller may so be in flight at once, up to the window. They are
// sent in the order they were handed over, and each is told its own outcome. The payload
// is copied, as Publish does.
func (c *Conn) PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool, then Outcome) error {
	pk, err := c.publishPacket(topic, payload, qos, retained)
	if err != nil {
		return err
	}
	if qos == 0 {
		if err := c.publish0(ctx, &pk); err != nil {
			return err
		}
		then.Outcome(nil)
		return nil
	}
	_, err = c.sendInWindow(ctx, &pk, then)
	return err
}

// publishPacket is the PUBLISH of a message, or an error for a QoS above 2.
func (c *Conn) publishPacket(topic string, payload []byte, qos byte, retained bool) (packets.Packet, error) {
	if qos > 2 {
		return packets.Packet{}, fmt.Errorf("publish %s: QoS %d is not 0, 1 or 2", topic, qos)
	}
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retained},
		TopicName:       topic,
		Payload:         payload,
		ProtocolVersion: c.cfg.Protocol,
	}, nil
}

// sendInWindow waits for room in the window, then sends a QoS 1 or 2 publish (send); the
// room is given back if it could not be sent.
func (c *Conn) sendInWindow(ctx context.Context, pk *packets.Packet, then Outcome) (*flight, error) {
	select {
	case c.slots <- struct{}{}:
	default:
		if err := c.waitRoom(ctx); err != nil {
			return nil, err
		}
	}
	f, err := c.send(ctx, pk, then)
	if err != nil {
		<-c.slots
		return nil, err
	}
	return f, nil
}

// Abandon tells every publish handed over by PublishAsync and still in flight err now, as a
// Publish whose context ended returns it: the flights stay in the session (the broker may
// still complete them), and their outcomes, when they come, go nowhere.
func (c *Conn) Abandon(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.flights {
		if f.then != nil {
			f.tell(err)
		}
	}
}

// waitRoom waits for room in the window, for at most the connect timeout.
func (c *Conn) waitRoom(ctx context.Context) error {
	t := time.NewTimer(c.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return notSent(ctx.Err())
	case <-c.life.Done():
		return notSent(errClosed)
	case <-t.C:
		return notSent(fmt.Errorf("%w: %d publishes in flight for %v", mqttconn.ErrNoAnswer, c.cfg.Window, c.cfg.ConnectTimeout))
	}
}

// publish0 sends a QoS 0 message, again on the next connection if the wire died under it.
func (c *Conn) publish0(ctx context.Context, pk *packets.Packet) error {
	for {
		w, err := c.waitUp(ctx)
		if err != nil {
			return err
		}
		ok, err := w.publish0(ctx, pk)
		if err != nil {
			return notSent(err)
		}
		if ok {
			return nil
		}
	}
}

// send registers a QoS 1/2 publish as in flight with a packet id of its own and writes it;
// its outcome goes to then, or with then nil to the flight's done channel for a Publish
// waiting on it. With a clean session it waits for the connection first, and again if it
// drops under it: nothing is kept for a connection that does not exist yet.
func (c *Conn) send(ctx context.Context, pk *packets.Packet, then Outcome) (*flight, error) {
	for {
		if _, err := c.waitUp(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, notSent(errClosed)
		}
		w := c.cur.Load()
		if w == nil && !c.cfg.Persistent {
			c.mu.Unlock()
			continue
		}
		pk.PacketID = c.takeID()
		f := flights.Get().(*flight)
		f.pkt.Reset()
		if err := pk.PublishEncode(&f.pkt); err != nil {
			c.releaseID(pk.PacketID)
			c.mu.Unlock()
			flights.Put(f)
			return nil, notSent(err)
		}
		c.seq++
		f.qos, f.rel, f.seq, f.start = pk.FixedHeader.Qos, false, c.seq, nanotime()
		f.waiting, f.then = then == nil, then
		c.flights[pk.PacketID] = f
		if w != nil {
			w.publish(pk, f.pkt.Bytes()) // a dead wire: the supervisor deals with the flight
		}
		c.mu.Unlock()
		if w != nil {
			w.push()
		}
		return f, nil
	}
}

// abandon stops waiting for f, unless its outcome came meanwhile. The flight stays in
// the session (the broker may still complete it) but nobody hears of it.
func (c *Conn) abandon(f *flight, err error) error {
	c.mu.Lock()
	if !f.waiting { // the outcome came meanwhile: it is in the channel
		c.mu.Unlock()
		return <-f.done
	}
	f.waiting = false
	c.mu.Unlock()
	return err
}

// complete ends the flight with packet id, if it is one of qos, with err. c.mu is held.
func (c *Conn) complete(id uint16, qos byte, err error) {
	f := c.flights[id]
	if f == nil || f.qos != qos {
		return // an acknowledgement of something long gone: nothing to do
	}
	c.finish(id, f, err)
}

// finish removes the flight id from the session and tells its outcome, err. c.mu is held.
// A flight of PublishAsync is then held by nobody, and is recycled.
func (c *Conn) finish(id uint16, f *flight, err error) {
	delete(c.flights, id)
	c.releaseID(id)
	<-c.slots
	if f.then != nil {
		f.tell(err)
		flights.Put(f)
		return
	}
	f.tell(err)
}

// dropFlights ends every flight and SUBACK wait with err. c.mu is held.
func (c *Conn) dropFlights(err error) {
	for id, f := range c.flights {
		c.finish(id, f, err)
	}
	for id, ch := range c.subacks {
		delete(c.subacks, id)
		c.releaseID(id)
		if ch != nil {
			ch <- nil
		}
	}
}

// handle acts on one packet from the broker, on the reader's goroutine.
func (c *Conn) handle(w *wire, pk *packets.Packet) error {
	id := pk.PacketID
	ack := func(typ byte) {
		a := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id, ProtocolVersion: c.cfg.Protocol}
		if typ == packets.Pubrel {
			a.FixedHeader.Qos = 1 // [MQTT-3.6.1-1]
		}
		w.control(&a)
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if err := resolveAlias(&w.aliasIn, pk, c.cfg.aliasesIn()); err != nil {
			return err
		}
		qos := pk.FixedHeader.Qos
		if qos < 2 || c.qos2.Deliver(id, pk.FixedHeader.Dup) {
			c.route(pk)
		}
		switch qos {
		case 1:
			ack(packets.Puback)
		case 2:
			ack(packets.Pubrec)
		}
	case packets.Pubrel:
		c.qos2.Release(id)
		ack(packets.Pubcomp)
	case packets.Puback, packets.Pubcomp:
		qos := byte(1)
		if pk.FixedHeader.Type == packets.Pubcomp {
			qos = 2
		}
		c.mu.Lock()
		c.complete(id, qos, reasonError(pk))
		c.mu.Unlock()
	case packets.Pubrec:
		c.mu.Lock()
		f := c.flights[id]
		switch {
		case f == nil || f.qos != 2:
		case pk.ReasonCode >= 0x80:
			c.finish(id, f, reasonError(pk))
		default:
			f.rel = true
			ack(packets.Pubrel)
		}
		c.mu.Unlock()
	case packets.Suback:
		c.mu.Lock()
		ch, ok := c.subacks[id]
		if ok {
			delete(c.subacks, id)
			c.releaseID(id)
		}
		c.mu.Unlock()
		if ch != nil {
			ch <- bytes.Clone(pk.ReasonCodes)
		}
	case packets.Pingresp:
		w.pingSent.Store(0)
	case packets.Disconnect:
		return fmt.Errorf("the broker disconnected (reason code 0x%02x)", pk.ReasonCode)
	case packets.Connack:
		return fmt.Errorf("%w: a second CONNACK", ErrMalformed)
	}
	return nil
}

// reasonError is an MQTT 5 acknowledgement's failure reason code as an error; nil for
// success (and always under MQTT 3.1.1).
func reasonError(pk *packets.Packet) error {
	if pk.ReasonCode < 0x80 {
		return nil
	}
	return &ReasonError{What: "publish", Code: pk.ReasonCode}
}

// Subscribe routes messages matching filter to r and sends SUBSCRIBE, even when another
// device on this connection subscribed to filter already (the broker then sends the
// retained messages again), and returns the QoS the broker granted; as
// mqttconn.Conn.Subscribe does, including shared subscriptions. While the connection is
// down it waits for it to come back; the subscription is sent again after every reconnect.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte, r mqttconn.Receiver) (byte, error) {
	c.dispatch.Add(filter, r) // first: retained messages may come before the SUBACK
	c.mu.Lock()
	c.subs[filter] = max(c.subs[filter], qos)
	c.mu.Unlock()
	t := time.NewTimer(c.cfg.ConnectTimeout)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		codes, err := c.subscribeOnce(ctx, t.C, filter, qos)
		if err != nil {
			return 0, fmt.Errorf("subscribe %q: %w", filter, err)
		}
		if codes == nil {
			continue // the connection dropped before the SUBACK: again on the next
		}
		g := codes[0]
		switch {
		case g <= 2:
			return g, nil
		case g == codeIDInUse && attempt < maxSubscribeAttempts:
			select { // see mqttconn.Conn.Subscribe
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			}
		case c.cfg.Protocol == MQTT5:
			return 0, fmt.Errorf("subscribe %q: %w", filter, &ReasonError{What: "subscription", Code: g})
		default: // 3.1.1: 0x80 is the one failure
			return 0, fmt.Errorf("subscribe %q: broker refused the subscription", filter)
		}
	}
}

const (
	codeIDInUse          = 0x91
	maxSubscribeAttempts = 10
)

// subscribeOnce sends one SUBSCRIBE and waits for its SUBACK's codes (one at least); nil
// codes: the connection dropped first.
func (c *Conn) subscribeOnce(ctx context.Context, expired <-chan time.Time, filter string, qos byte) ([]byte, error) {
	if _, err := c.waitUp(ctx); err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	c.mu.Lock()
	w := c.cur.Load()
	if w == nil {
		c.mu.Unlock()
		return nil, nil
	}
	id := c.takeID()
	c.subacks[id] = ch
	w.control(c.subscribePacket(w, id, map[string]byte{filter: qos}))
	c.mu.Unlock()
	select {
	case codes := <-ch:
		if codes != nil && len(codes) == 0 {
			return nil, fmt.Errorf("%w: SUBACK without a code", ErrMalformed)
		}
		return codes, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.life.Done():
		return nil, errClosed
	case <-expired:
		return nil, fmt.Errorf("%w within %v", mqttconn.ErrNoAnswer, c.cfg.ConnectTimeout)
	}
}

// subscribePacket is a SUBSCRIBE for w of filters (at their QoS) with packet id, filters in
// a fixed order. A SUBSCRIBE of one filter on a wire that may use subscription identifiers
// carries the filter's (see subIDs); a SUBSCRIBE carries one at most. c.mu is held.
func (c *Conn) subscribePacket(w *wire, id uint16, filters map[string]byte) *packets.Packet {
	pk := &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, // [MQTT-3.8.1-1]
		PacketID:        id,
		ProtocolVersion: c.cfg.Protocol,
	}
	for _, f := range slices.Sorted(maps.Keys(filters)) {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: filters[f]})
	}
	if w.subIDs && len(pk.Filters) == 1 {
		pk.Properties.SubscriptionIdentifier = []int{c.subIDs.id(pk.Filters[0].Filter)}
	}
	return pk
}

// resubscribe sends the connection's subscriptions again on w, after a reconnect: in one
// SUBSCRIBE, or one a filter when each carries its subscription identifier. Nobody waits
// for the SUBACKs: best effort, as mqttconn's resubscribe. c.mu is held.
func (c *Conn) resubscribe(w *wire) {
	if len(c.subs) == 0 {
		return
	}
	if !w.subIDs {
		id := c.takeID()
		c.subacks[id] = nil
		w.control(c.subscribePacket(w, id, c.subs))
		return
	}
	for _, f := range slices.Sorted(maps.Keys(c.subs)) {
		id := c.takeID()
		c.subacks[id] = nil
		w.control(c.subscribePacket(w, id, map[string]byte{f: c.subs[f]}))
	}
}

// attach makes w the connection's network connection: it starts its goroutines, sends
// the session's publishes in flight again (in their first order, DUP set) and the
// subscriptions, then marks the connection up. A new session (present false) has no
// incoming QoS 2 message to be sent again.
func (c *Conn) attach(w *wire, present bool) {
	c.mu.Lock()
	if !present {
		c.qos2.Reset()
	}
	c.cur.Store(w)
	c.recovering, c.upSince = false, time.Now() // w's loss is for a new goroutine
	w.start()
	c.resend(w)
	c.resubscribe(w)
	c.mu.Unlock()
	c.setUp(true, nil)
}

// resend writes the flights again on w, oldest first. c.mu is held.
func (c *Conn) resend(w *wire) {
	if len(c.flights) == 0 {
		return
	}
	ids := slices.SortedFunc(maps.Keys(c.flights), func(a, b uint16) int {
		return cmp.Compare(c.flights[a].seq, c.flights[b].seq)
	})
	for _, id := range ids {
		f := c.flights[id]
		if f.rel {
			rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id, ProtocolVersion: c.cfg.Protocol}
			w.control(&rel)
			continue
		}
		b := f.pkt.Bytes()
		b[0] |= 0x08 // DUP [MQTT-3.3.1-1]
		w.raw(b)
	}
	w.mu.Lock()
	w.wake()
	w.mu.Unlock()
}

// down records that w dropped with err: with a clean session the flights fail now (the
// broker forgets them); SUBACK waits end and try again on the next connection.
func (c *Conn) down(w *wire) {
	c.mu.Lock()
	c.cur.CompareAndSwap(w, nil)
	if !c.cfg.Persistent {
		for id, f := range c.flights {
			c.finish(id, f, errLost)
		}
	}
	for id, ch := range c.subacks {
		delete(c.subacks, id)
		c.releaseID(id)
		if ch != nil {
			ch <- nil
		}
	}
	c.mu.Unlock()
	w.wait()
	c.setUp(false, w.err)
}

// lostWire takes w, which failed, out of use at once (publishers then wait for the next
// connection rather than finding a dead one), and starts a goroutine that reconnects,
// when w was the connection's and none is reconnecting already.
func (c *Conn) lostWire(w *wire) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.recovering || !c.cur.CompareAndSwap(w, nil) {
		return // not the connection's (any more), or already taken care of
	}
	c.recovering = true
	c.bg.Add(1)
	go c.recover(w)
}

// recover takes the loss of w and reconnects, with full-jitter backoff, until it is back or
// the Conn closes. The backoff starts over once the connection had stayed up for
// ReconnectCap, so a connection dropped right after each connect backs off.
func (c *Conn) recover(w *wire) {
	defer c.bg.Done()
	c.down(w)
	c.mu.Lock()
	if time.Since(c.upSince) >= c.cfg.ReconnectCap {
		c.attempt = 0
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		attempt := c.attempt
		c.attempt++
		c.mu.Unlock()
		pause := time.NewTimer(mqttconn.FullJitter(attempt, c.cfg.ReconnectBase, c.cfg.ReconnectCap))
		select {
		case <-c.life.Done():
			pause.Stop()
			return
		case <-pause.C:
		}
		nw, present, err := c.connect(c.life)
		if c.life.Err() != nil {
			if nw != nil {
				nw.nc.Close()
			}
			return
		}
		if f := c.cfg.OnReconnectAttempt; f != nil {
			if err != nil {
				err = mqttconn.Explain(c.cfg.Broker, err)
			}
			f(err)
		}
		if err == nil {
			c.attach(nw, present)
			return
		}
	}
}

// onTick is the ticker's function: tick, then again.
func (c *Conn) onTick() {
	if c.life.Err() != nil {
		return
	}
	c.tick()
	c.mu.Lock()
	if c.life.Err() == nil {
		c.ticker.Reset(c.tickEvery())
	}
	c.mu.Unlock()
}

// tickEvery is the ticker's period: a quarter of the keepalive or of the connect
// timeout, whichever is shorter.
func (c *Conn) tickEvery() time.Duration {
	return max(min(c.cfg.KeepAlive, c.cfg.ConnectTimeout)/4, 10*time.Millisecond)
}

// tick times out publishes the broker has not answered within the connect timeout, and
// keeps the connection alive: a PINGREQ once it has been quiet for half the keepalive, and
// a drop when a PINGREQ is not answered within the connect timeout.
func (c *Conn) tick() {
	now := nanotime()
	timeout := int64(c.cfg.ConnectTimeout)
	c.mu.Lock()
	for _, f := range c.flights {
		if (f.waiting || f.then != nil) && now-f.start > timeout {
			// Told, and so abandoned: the flight stays in the session (the broker may
			// still complete it), and a late outcome goes nowhere.
			f.tell(fmt.Errorf("%w within %v", mqttconn.ErrNoAnswer, c.cfg.ConnectTimeout))
		}
	}
	c.mu.Unlock()
	w := c.cur.Load()
	if w == nil {
		return
	}
	if sent := w.pingSent.Load(); sent != 0 {
		if now-sent > timeout {
			w.fail(fmt.Errorf("%w: no PINGRESP within %v", mqttconn.ErrNoAnswer, c.cfg.ConnectTimeout))
		}
		return
	}
	if now-w.lastWrite.Load() >= int64(c.cfg.KeepAlive/2) {
		w.pingSent.Store(now)
		ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}, ProtocolVersion: c.cfg.Protocol}
		w.control(&ping)
	}
}
