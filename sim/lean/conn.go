// Package lean is fleetsim's MQTT transport made for load, beside mqttconn's paho one and
// behind the same seam (the runner's connection): Publish, Subscribe, Up and Close.
//
// It spends little per message and per connection:
//
//   - Packets are encoded and decoded with mochi-mqtt's packets package; the protocol
//     version (4: MQTT 3.1.1, 5: MQTT 5) is a setting of the connection, passed to the codec.
//   - One buffered reader a connection, on the connection's reading goroutine, which
//     routes incoming messages through an mqttconn.Dispatcher and acknowledges them.
//   - Writes are coalesced: a publish appends its packet to the connection's pending
//     buffer and wakes the writing goroutine, which writes everything pending in one system
//     call as soon as it is free. Nothing waits on a timer to fill a batch.
//   - QoS 1 and 2 publishes are pipelined within a window (Config.Window): each takes a
//     packet id from a free list and waits on a channel of its own (pooled) for the
//     acknowledgement, which the reader matches by id. No goroutine or timer per message:
//     one ticker a connection sends keepalives and times out publishes the broker does not
//     answer.
//
// Dialing, TLS, WebSocket, shaped links (Options.NetDial), backoff, connect errors and
// their classes (mqttconn.Explain) are mqttconn's, shared, so both transports connect,
// fail and exit the same way.
package lean

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// Protocol versions, as the CONNECT packet carries them.
const (
	MQTT311 byte = 4
	MQTT5   byte = 5
)

// Config is a lean connection's settings: the ones every transport shares, and its own.
type Config struct {
	mqttconn.Options
	// Protocol is the MQTT version spoken: MQTT311 (the default) or MQTT5. Under MQTT 5
	// the Receive Maximum is honoured (see Window), refusals' reason codes have their
	// classes (mqttconn.Refused) and names (ReasonError), publishes may carry Props
	// (PublishWith), topics get aliases both ways (see TopicAliasMax) and shared
	// subscriptions go to the broker as written.
	Protocol byte
	// SessionExpiry is how long the broker keeps a persistent session (Options.Persistent)
	// once its connection ends, under MQTT 5: the Session Expiry Interval, in whole seconds
	// rounded up. 0: for good (NeverExpires), as a 3.1.1 broker keeps one.
	SessionExpiry time.Duration
	// Window is how many QoS 1 and 2 publishes may be in flight on the connection at once;
	// Publish waits for room beyond it. Default 1000, at most 65000. Under MQTT 5 the
	// broker's Receive Maximum in the first CONNACK lowers it.
	Window int
	// MaxPacket bounds the size of a packet from the broker; a larger one is malformed.
	// Default 1 MiB.
	MaxPacket int
}

func (c Config) withDefaults() Config {
	c.Options = c.Options.WithDefaults()
	if c.Protocol == 0 {
		c.Protocol = MQTT311
	}
	if c.Window <= 0 {
		c.Window = 1000
	}
	c.Window = min(c.Window, 65000)
	if c.MaxPacket <= 0 {
		c.MaxPacket = 1 << 20
	}
	return c
}

// Conn is one lean MQTT connection, shared by the devices routed through its Dispatcher.
// Like mqttconn.Conn it keeps itself connected until Close, reconnecting with full-jitter
// backoff, sends its subscriptions again after each reconnect and, with a persistent
// session, its QoS 1 and 2 publishes in flight (DUP set), in the order they were first sent.
//
// Goroutines: while the connection is up, one (its reader). A writer runs while
// acknowledgements wait to be written, the ticker's function (keepalive, timeouts) while it
// runs, and a reconnecting goroutine while the connection is down; Close ends them all.
type Conn struct {
	cfg      Config
	clientID string
	broker   *url.URL
	dispatch mqttconn.Dispatcher
	qos2     mqttconn.QoS2Seen
	slots    chan struct{} // a token per QoS 1/2 publish in flight: the window

	up        mqttconn.UpState
	cur       atomic.Pointer[wire] // the network connection; nil while down
	malformed atomic.Int64         // connections dropped for bytes that did not decode

	mu      sync.Mutex
	closed  bool
	flights map[uint16]*flight     // QoS 1/2 publishes in flight, by packet id
	seq     uint64                 // numbers flights in the order they were first sent
	nextID  uint16                 // the next packet id never used yet
	freeIDs []uint16               // packet ids used and released
	subs    map[string]byte        // highest QoS asked per filter, for resubscribing
	subIDs  subIDs                 // MQTT 5: the filters' subscription identifiers
	subacks map[uint16]chan []byte // SUBACK waiters by packet id; nil: nobody waits

	ticker     *time.Timer // keepalive and timeouts (tick), every tickEvery
	recovering bool        // a goroutine is reconnecting
	attempt    int         // reconnect attempts since the connection was last up long enough
	upSince    time.Time   // when the connection last came up

	life context.Context // ends at Close
	end  context.CancelFunc
	bg   sync.WaitGroup // the reconnecting goroutine
}

// Errors of Publish and Subscribe.
var (
	errClosed = errors.New("connection closed")
	errLost   = errors.New("connection lost before Publish completed")
	// ErrNotConnected is a Publish or Subscribe that found the connection down for longer
	// than the connect timeout (wrapped with mqttconn.ErrNotSent).
	ErrNotConnected = errors.New("not connected")
	// ErrMalformed is a packet from the broker that did not decode: the connection is
	// dropped (counted, see Malformed) and made again.
	ErrMalformed = errors.New("malformed packet from the broker")
)

// Dial connects one client with the given client id and waits for the broker's CONNACK,
// retrying an unreachable broker for cfg.RetryFor as mqttconn.Dial does; failures are
// explained by mqttconn.Explain. Once connected, the Conn keeps itself connected until
// Close; ctx bounds only the dialing.
func Dial(ctx context.Context, cfg Config, clientID string) (*Conn, error) {
	cfg = cfg.withDefaults()
	if cfg.Protocol != MQTT311 && cfg.Protocol != MQTT5 {
		return nil, fmt.Errorf("MQTT protocol version %d: want 4 (3.1.1) or 5", cfg.Protocol)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", cfg.Broker, err)
	}
	c := &Conn{
		cfg: cfg, clientID: clientID, broker: u,
		flights: map[uint16]*flight{},
		subs:    map[string]byte{},
		subacks: map[uint16]chan []byte{},
		nextID:  1,
	}
	c.life, c.end = context.WithCancel(context.Background())
	deadline := time.Now().Add(cfg.RetryFor)
	for attempt := 0; ; attempt++ {
		w, present, err := c.connect(ctx)
		if err == nil {
			window := cfg.Window
			if w.receiveMax > 0 { // honoured from the first CONNACK on (MQTT 5 §3.2.2.3.3)
				window = min(window, int(w.receiveMax))
			}
			c.slots = make(chan struct{}, window)
			c.attach(w, present)
			break
		}
		err = mqttconn.Explain(cfg.Broker, err)
		pause := mqttconn.Backoff(attempt)
		if ctx.Err() != nil || !errors.Is(err, mqttconn.ErrUnreachable) || time.Now().Add(pause).After(deadline) {
			c.end()
			return nil, err
		}
		select {
		case <-ctx.Done():
			c.end()
			return nil, err
		case <-time.After(pause):
		}
	}
	c.mu.Lock()
	c.ticker = time.AfterFunc(c.tickEvery(), c.onTick)
	c.mu.Unlock()
	return c, nil
}

// Up reports whether the connection is established now.
func (c *Conn) Up() bool { return c.up.Up() }

// Malformed is how many times the connection was dropped for a packet from the broker
// that did not decode.
func (c *Conn) Malformed() int64 { return c.malformed.Load() }

// Window is how many QoS 1 and 2 publishes may be in flight at once: Config.Window, or
// less if the broker's Receive Maximum (MQTT 5) says so.
func (c *Conn) Window() int { return cap(c.slots) }

// Protocol is the MQTT version the connection speaks.
func (c *Conn) Protocol() byte { return c.cfg.Protocol }

// Close ends the Conn: it stops reconnecting, sends DISCONNECT if connected (letting
// what is pending be written for up to 250 ms), closes the network connection and waits
// for the Conn's goroutines. Publish and Subscribe calls waiting on it return an error.
// It is safe to call more than once.
func (c *Conn) Close() {
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if closed {
		return
	}
	c.end()
	c.mu.Lock()
	c.ticker.Stop()
	c.mu.Unlock()
	c.bg.Wait()
	if w := c.cur.Swap(nil); w != nil {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: c.cfg.Protocol}
		w.control(&pk)
		w.flush(250 * time.Millisecond)
		w.fail(errClosed)
		w.wait()
	}
	c.mu.Lock()
	c.dropFlights(errClosed)
	c.mu.Unlock()
	c.setUp(false, nil)
}

// setUp records a change of the connection's state, wakes whoever waits for it, and tells
// OnChange about real changes; Dial, the supervisor and Close call it one after the other.
func (c *Conn) setUp(up bool, lost error) {
	c.mu.Lock()
	changed := c.up.Set(up)
	c.mu.Unlock()
	if changed && c.cfg.OnChange != nil {
		c.cfg.OnChange(up, lost)
	}
}

// waitUp returns the network connection, waiting for it while the connection is down, for
// at most the connect timeout. Its errors are mqttconn.ErrNotSent.
func (c *Conn) waitUp(ctx context.Context) (*wire, error) {
	if w := c.cur.Load(); w != nil {
		return w, nil
	}
	t := time.NewTimer(c.cfg.ConnectTimeout)
	defer t.Stop()
	for {
		c.mu.Lock()
		up, closed := c.up.Wait(), c.closed
		c.mu.Unlock()
		if closed {
			return nil, notSent(errClosed)
		}
		if w := c.cur.Load(); w != nil {
			return w, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, notSent(ctx.Err())
		case <-c.life.Done():
			return nil, notSent(errClosed)
		case <-t.C:
			return nil, notSent(fmt.Errorf("%w: the connection did not come back within %v", ErrNotConnected, c.cfg.ConnectTimeout))
		}
		if w := c.cur.Load(); w != nil {
			return w, nil
		}
		// Up and down again in between: wait for the next time.
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return nil, notSent(ctx.Err())
		}
	}
}

func notSent(err error) error { return fmt.Errorf("%w: %w", mqttconn.ErrNotSent, err) }

// takeID returns a packet id not in use, from the free list first. c.mu is held; the
// window keeps the ids in use well below 65535.
func (c *Conn) takeID() uint16 {
	if n := len(c.freeIDs); n > 0 {
		id := c.freeIDs[n-1]
		c.freeIDs = c.freeIDs[:n-1]
		return id
	}
	for {
		id := c.nextID
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.flights[id]; busy {
			continue
		}
		if _, busy := c.subacks[id]; busy {
			continue
		}
		return id
	}
}

// releaseID gives id back. c.mu is held.
func (c *Conn) releaseID(id uint16) { c.freeIDs = append(c.freeIDs, id) }
