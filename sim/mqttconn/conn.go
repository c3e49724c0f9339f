// Package mqttconn owns fleetsim's MQTT connections. Many devices share one connection
// (per home, or a pool); each connection has one Dispatcher that routes incoming messages
// to the devices whose filters match, and the messages of a shared subscription
// ("$share/{group}/{filter}") to one of the devices that subscribed to it. A connection that
// drops reconnects by itself, with jittered exponential backoff, and may keep a persistent
// session across drops (see Conn and Options). It wraps github.com/eclipse/paho.mqtt.golang,
// and reads plain TCP through a read-ahead buffer (readahead.go).
package mqttconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// Options are the settings every connection of a run shares.
type Options struct {
	Broker   string      // URL: tcp://, ssl://, ws://, wss://
	Username string      // empty for none
	Password string      // never logged
	TLS      *tls.Config // for ssl:// and wss://; nil uses system roots
	// NetDial, if set, opens the network connection, for instance through a shaped link
	// (sim/link); TLS is layered on top of it here so its bytes are shaped too. It serves
	// tcp:// and ssl:// brokers. A connection it returns that breaks must say so with an
	// error other than net.ErrClosed ("use of closed network connection"), which paho
	// v1.5.1 takes for its own closing and ignores (net.go, startIncoming): the drop would
	// go unnoticed until the keepalive. sim/link's ErrLinkDown is such an error.
	NetDial        func(ctx context.Context, network, addr string) (net.Conn, error)
	ConnectTimeout time.Duration // per attempt; also bounds each Publish and Subscribe
	// RetryFor is how long Dial keeps retrying a broker it cannot reach (refused, timed
	// out, unresolvable), with exponential backoff and jitter. Refusals that retrying
	// cannot fix (credentials, TLS) fail at once. 0 means one attempt.
	RetryFor  time.Duration
	KeepAlive time.Duration
	// OnChange, optional, is told each time the connection goes up or down; lost is the
	// error when an established connection dropped (nil when it was closed on purpose).
	// It must not block.
	OnChange func(up bool, lost error)

	// ReconnectBase and ReconnectCap shape how a connection that dropped comes back:
	// the pause before reconnect attempt k (from 0) is drawn uniformly from
	// [0, min(ReconnectCap, ReconnectBase·2^k)) ("full jitter"), so that thousands of
	// clients that lost their broker at the same moment return spread out rather than in
	// one burst. Attempts go on until one succeeds or Close. The count restarts from 0
	// once a connection has stayed up for ReconnectCap, so a connection that the broker
	// drops right after each connect (say, another client with the same id) backs off
	// instead of reconnecting in a tight loop. Defaults: 100 ms and 10 s; a cap below the
	// base is raised to it.
	ReconnectBase time.Duration
	ReconnectCap  time.Duration
	// OnReconnectAttempt, optional, is told the outcome of each reconnect attempt (not
	// Dial's): nil when it connected, else the error explained as Explain does, so
	// errors.Is tells ErrUnreachable, ErrAuth and ErrTLS apart. It must not block.
	OnReconnectAttempt func(err error)

	// Persistent asks the broker for a persistent session (MQTT CleanSession=false,
	// §3.1.2.4) under the client id given to Dial. The broker then keeps the session's
	// subscriptions and queues QoS 1 and 2 messages for it while it is away, and the
	// connection keeps its QoS 1 and 2 publishes in flight across a drop and sends them
	// again once it is back (see Publish). Incoming QoS 2 messages that the broker sends
	// again after a drop are delivered once (see Conn). The zero value keeps clean
	// sessions: the broker forgets everything at each drop.
	Persistent bool
}

// WithDefaults returns o with the defaults filled in where it leaves a setting unset, as
// Dial uses it; another transport reading Options uses the same.
func (o Options) WithDefaults() Options {
	o.withDefaults()
	return o
}

func (o *Options) withDefaults() {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ReconnectBase <= 0 {
		o.ReconnectBase = 100 * time.Millisecond
	}
	if o.ReconnectCap <= 0 {
		o.ReconnectCap = 10 * time.Second
	}
	o.ReconnectCap = max(o.ReconnectCap, o.ReconnectBase)
}

// Conn is one MQTT connection, shared by the devices routed through its Dispatcher.
//
// When an established connection drops, the Conn reconnects by itself (see
// Options.ReconnectBase) in a goroutine of its own that Close ends, and sends its
// subscriptions again after every reconnect. paho's own auto-reconnect is off: paho
// v1.5.1 (client.go reconnect, backoff.go) tries at once, then after 1 s, 2 s, 4 s… up
// to a maximum, without jitter, the same for every client, so a fleet that lost its
// broker comes back in synchronized waves.
//
// paho v1.5.1 delivers a QoS 2 message again when the broker re-sends it (DUP) after a
// drop, before paho's PUBREC reached the broker: paho does not keep the packet ids of
// QoS 2 messages it has delivered (MQTT 3.1.1 §4.3.3, method B). The Conn does: it
// passes a re-sent QoS 2 message on only if it has not delivered that packet id since
// the broker's last PUBREL for it.
type Conn struct {
	client   mqtt.Client
	dispatch Dispatcher
	opts     Options
	qos2     QoS2Seen

	up UpState

	mu      sync.Mutex
	subQoS  map[string]byte // highest QoS asked per filter, for resubscribing after a reconnect
	closed  bool
	attempt context.Context // the connect attempt in progress, for open; nil between attempts
	detach  func() bool     // keeps the attempt's network connection open after it succeeded

	lost     chan error         // connection losses, for the reconnect loop
	life     context.Context    // ends at Close: stops the reconnect loop and any attempt
	end      context.CancelFunc // ends life
	loopDone chan struct{}      // closed when the reconnect loop has returned
}

// errClosed is the error of Publish and Subscribe on a closed Conn.
var errClosed = errors.New("connection closed")

// Dial connects one client with the given client id and waits for the broker's CONNACK.
// Failures are explained in terms a user can act on (see Explain). Once connected, the
// Conn keeps itself connected until Close; ctx bounds only the dialing.
func Dial(ctx context.Context, opts Options, clientID string) (*Conn, error) {
	opts.withDefaults()
	c := &Conn{
		opts:     opts,
		subQoS:   map[string]byte{},
		lost:     make(chan error, 1),
		loopDone: make(chan struct{}),
	}
	c.life, c.end = context.WithCancel(context.Background())
	o := mqtt.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID(clientID).
		SetProtocolVersion(4). // MQTT 3.1.1; no silent fallback to 3.1
		SetCleanSession(!opts.Persistent).
		SetStore(&trackingStore{Store: newStore(opts.Persistent), seen: &c.qos2}).
		SetKeepAlive(opts.KeepAlive).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.ConnectTimeout).
		SetAutoReconnect(false). // reconnectLoop does it, with jitter
		// In-order delivery keeps per-stream order intact for the devices. It is safe
		// only because the handler never blocks: Dispatch does non-blocking sends.
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			if m.Qos() == 2 && !c.qos2.Deliver(m.MessageID(), m.Duplicate()) {
				return // delivered already; paho still answers PUBREC
			}
			c.dispatch.Dispatch(sim.Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case c.lost <- err:
			default: // one loss per connection, and the loop takes it before reconnecting
			}
		}).
		SetCustomOpenConnectionFn(c.open)
	if opts.Username != "" {
		o.SetUsername(opts.Username)
	}
	if opts.Password != "" {
		o.SetPassword(opts.Password)
	}
	if opts.TLS != nil {
		o.SetTLSConfig(opts.TLS)
	}
	c.client = mqtt.NewClient(o)
	deadline := time.Now().Add(opts.RetryFor)
	for attempt := 0; ; attempt++ {
		_, err := c.connectOnce(ctx, opts.ConnectTimeout+time.Second)
		if err == nil {
			break
		}
		c.client.Disconnect(0)
		err = Explain(opts.Broker, err)
		pause := Backoff(attempt)
		if ctx.Err() != nil || !errors.Is(err, ErrUnreachable) || time.Now().Add(pause).After(deadline) {
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
	c.setUp(true, nil)
	go c.reconnectLoop()
	return c, nil
}

// newStore returns paho's in-memory store for a session: for a persistent one, the
// ordered kind, so that publishes in flight at a drop are sent again in their order.
func newStore(persistent bool) mqtt.Store {
	if persistent {
		return mqtt.NewOrderedMemoryStore()
	}
	return mqtt.NewMemoryStore()
}

// connectOnce makes one connect attempt and waits for its outcome, for at most limit
// (0: no limit beyond paho's own per-attempt timeouts). If ctx ends or the limit
// passes first, it aborts the attempt (it closes the attempt's network connection, or
// stops its dial) and waits for paho to give it up, which then takes no time: nothing
// of the attempt outlives the call. present is the broker's CONNACK session-present flag.
func (c *Conn) connectOnce(ctx context.Context, limit time.Duration) (present bool, err error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.attempt, c.detach = actx, nil
	c.mu.Unlock()

	tok := c.client.Connect()
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-tok.Done():
		err = tok.Error()
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = fmt.Errorf("%w within %v", ErrNoAnswer, limit)
	}

	c.mu.Lock()
	detach := c.detach
	c.attempt, c.detach = nil, nil
	c.mu.Unlock()
	if err == nil {
		if detach != nil {
			detach()
		}
		if ct, ok := tok.(*mqtt.ConnectToken); ok {
			present = ct.SessionPresent()
		}
		return present, nil
	}
	cancel()
	<-tok.Done()
	return false, err
}

// open opens the network connection of a connect attempt for paho, bound to the
// attempt's context: ending it stops the dial, and closes a connection still in the
// MQTT handshake (or, past it, until connectOnce detaches it).
func (c *Conn) open(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	c.mu.Lock()
	ctx := c.attempt
	c.mu.Unlock()
	if ctx == nil { // paho connects only when connectOnce asks; be safe anyway
		return nil, errors.New("no connect attempt in progress")
	}
	conn, err := OpenNet(ctx, c.opts, u)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "tcp" || u.Scheme == "mqtt" {
		conn = newReadAhead(conn)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c.mu.Lock()
	if c.attempt == ctx {
		c.detach = stop
	}
	c.mu.Unlock()
	return conn, nil
}

// OpenNet opens the network connection of one connect attempt to the broker at u, as
// opts say: TCP through opts.NetDial (a shaped link, say) or a plain dialer, TLS on top of
// it for ssl:// (opts.TLS, verified, TLS 1.2 at least), or a WebSocket for ws:// and wss://.
// ctx and opts.ConnectTimeout bound the dial and the TLS handshake (a WebSocket dial, by
// paho's dialer, only the timeout). Every transport opens its connections with it, so they
// dial, verify and shape the same way.
func OpenNet(ctx context.Context, opts Options, u *url.URL) (net.Conn, error) {
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	switch u.Scheme {
	case "ws", "wss":
		if opts.NetDial != nil {
			return nil, fmt.Errorf("a shaped link carries tcp:// and ssl:// brokers, not %s://", u.Scheme)
		}
		wu := *u
		wu.User = nil // gorilla/websocket refuses URLs with user info
		return mqtt.NewWebsocket(wu.String(), opts.TLS, timeout, nil, nil)
	}
	dial := opts.NetDial
	if dial == nil {
		dial = plainDialer.DialContext // on Linux, ports picked cheaply at scale: see there
	}
	return dialVia(ctx, dial, u, opts.TLS, timeout)
}

// dialVia opens a connection to u with dial, adding TLS for ssl:// URLs; ctx and timeout
// bound the dial and the TLS handshake.
func dialVia(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), u *url.URL, tlsConf *tls.Config, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		return conn, nil
	case "ssl", "tls", "mqtts":
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			conf = tlsConf.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = u.Hostname()
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	default:
		conn.Close()
		return nil, fmt.Errorf("unsupported broker URL scheme %s:// (use tcp://, ssl://, ws:// or wss://)", u.Scheme)
	}
}

// Backoff is the pause before Dial's retry number attempt+1: exponential from 100 ms,
// capped at 5 s, with full jitter so that many clients retrying at once spread out. Every
// transport retrying an unreachable broker at the start uses it.
func Backoff(attempt int) time.Duration {
	return FullJitter(attempt, 100*time.Millisecond, 5*time.Second) + time.Millisecond
}

// FullJitter returns a pause drawn uniformly from [0, min(ceiling, base·2^attempt)),
// the "full jitter" backoff (AWS Architecture Blog, "Exponential Backoff And Jitter",
// 2015), which spreads clients that start retrying together best for its cost. base
// must be positive.
func FullJitter(attempt int, base, ceiling time.Duration) time.Duration {
	limit := base
	for i := 0; i < attempt && limit < ceiling; i++ {
		limit *= 2
	}
	limit = min(limit, ceiling)
	return time.Duration(rand.Int64N(int64(limit)))
}

// reconnectLoop is the Conn's own goroutine: it waits for the connection to drop,
// reconnects with full-jitter backoff and sends the subscriptions again, until Close.
func (c *Conn) reconnectLoop() {
	defer close(c.loopDone)
	attempt := 0
	upSince := time.Now()
	for {
		var lost error
		select {
		case <-c.life.Done():
			return
		case lost = <-c.lost:
		}
		c.setUp(false, lost)
		if time.Since(upSince) >= c.opts.ReconnectCap {
			attempt = 0
		}
		for {
			pause := FullJitter(attempt, c.opts.ReconnectBase, c.opts.ReconnectCap)
			attempt++
			select {
			case <-c.life.Done():
				return
			case <-time.After(pause):
			}
			present, err := c.connectOnce(c.life, 0)
			if c.life.Err() != nil {
				return
			}
			if f := c.opts.OnReconnectAttempt; f != nil {
				if err != nil {
					err = Explain(c.opts.Broker, err)
				}
				f(err)
			}
			if err == nil {
				if !present {
					c.qos2.Reset() // a new session: the broker re-sends nothing
				}
				break
			}
		}
		upSince = time.Now()
		c.setUp(true, nil)
		c.resubscribe()
	}
}

// resubscribe sends every subscription again after a reconnect: after a clean session the
// broker has forgotten them, and a persistent session may have been lost (a broker
// restarted without persistence). It is best effort: a failure shows as missing messages
// and lost-connection counts, and the next reconnect tries again.
func (c *Conn) resubscribe() {
	c.mu.Lock()
	filters := maps.Clone(c.subQoS)
	c.mu.Unlock()
	if len(filters) == 0 {
		return
	}
	t := time.NewTimer(c.opts.ConnectTimeout)
	defer t.Stop()
	select {
	case <-c.client.SubscribeMultiple(filters, nil).Done():
	case <-t.C:
	case <-c.life.Done():
	}
}

// Subscribe routes messages matching filter to r and sends SUBSCRIBE, even when another
// device on this connection already subscribed to filter: the broker then re-sends the
// retained messages (MQTT 3.1.1 §3.8.4), so a device joining a shared connection late still
// sees the current state. Devices that were already routed see those retained messages
// again, which is why device models treat a repeated state as no change. It returns the
// QoS the broker granted. While the connection is down it waits for it to come back, as
// Publish does; the subscription is sent again after every reconnect in any case.
//
// filter may be a shared subscription "$share/{group}/{filter}": the SUBSCRIBE carries it
// whole and the Dispatcher gives each message to one of the devices that subscribed to it.
// Brokers differ on retained messages for it: mochi-mqtt v2.7.9 sends none (server.go,
// publishRetainedToClient), mosquitto 2.0.11 sends them on every SUBSCRIBE, each copy
// going to one device.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte, r Receiver) (byte, error) {
	// Route first: retained messages can arrive before the SUBACK is handled.
	c.dispatch.Add(filter, r)
	c.mu.Lock()
	c.subQoS[filter] = max(c.subQoS[filter], qos)
	c.mu.Unlock()

	for attempt := 1; ; attempt++ {
		tok, err := c.whenUp(ctx, func() mqtt.Token { return c.client.Subscribe(filter, qos, nil) })
		if err != nil {
			return 0, fmt.Errorf("subscribe %q: %w", filter, err)
		}
		g, ok := tok.(*mqtt.SubscribeToken).Result()[subackKey(filter)]
		switch {
		case ok && g <= 2:
			return g, nil
		case g == codeIDInUse && attempt < maxSubscribeAttempts:
			// mochi-mqtt v2.7.9 (server.go, processSubscribe) checks a SUBSCRIBE's packet
			// id against its own outbound in-flight ids, a separate id space (MQTT
			// §2.3.1), and refuses it. Paho picks a new id for the next attempt.
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			}
		case !ok || g == 0x80:
			return 0, fmt.Errorf("subscribe %q: broker refused the subscription", filter)
		default:
			return 0, fmt.Errorf("subscribe %q: broker refused the subscription (reason code 0x%02x)", filter, g)
		}
	}
}

// subackKey is the key under which paho reports filter's SUBACK result: paho v1.5.1
// (client.go, Subscribe) files it under the filter without a leading "$share/{group}/" and
// then without a leading "$queue/".
func subackKey(filter string) string {
	if rest, ok := strings.CutPrefix(filter, topic.SharePrefix); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	return strings.TrimPrefix(filter, "$queue/")
}

// codeIDInUse is the SUBACK reason code "packet identifier in use" (MQTT 5 §3.9.3), which
// some brokers also send to 3.1.1 clients; maxSubscribeAttempts bounds retrying it.
const (
	codeIDInUse          = 0x91
	maxSubscribeAttempts = 10
)

// Publish sends one message and waits until it is complete for its QoS (QoS 0: written;
// 1: PUBACK; 2: PUBCOMP), ctx ends, the connection is closed, or the connect timeout
// passes, whichever comes first. The timeout covers the whole call:
//
//   - While the connection is down, Publish waits for it to come back, then publishes;
//     if it is not back in time, the error wraps paho's ErrNotConnected and nothing was
//     sent. This holds for every QoS: QoS 0 is not dropped silently during an outage.
//   - A QoS 1 or 2 publish in flight when the connection drops: with a clean session it
//     fails at once ("connection lost before Publish completed"); it may or may not have
//     reached the broker, and it is not sent again. With Options.Persistent it stays in
//     paho's store and is sent again (DUP) once the connection is back, in order; Publish
//     returns nil when paho has sent it again (paho v1.5.1 completes the first attempt's
//     token then, not at the broker's acknowledgement; the message stays in the store
//     until acknowledged, across further drops, while the Conn lives).
//
// An error from ctx or the timeout does not withdraw a QoS 1 or 2 message already handed
// to paho: with a persistent session it may still be delivered.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	_, err := c.whenUp(ctx, func() mqtt.Token { return c.client.Publish(topic, qos, retained, payload) })
	return err
}

// ErrNotSent marks (errors.Is) a Publish or Subscribe that failed before anything was
// handed to the connection: the broker cannot have it.
var ErrNotSent = errors.New("not sent")

// ErrNoAnswer marks (errors.Is) a connect attempt, Publish or Subscribe that the broker did
// not answer within Options.ConnectTimeout.
var ErrNoAnswer = errors.New("no answer from the broker")

// whenUp waits until the connection is up, calls send and waits for its token, all
// bounded by ctx, Close and the connect timeout. When the connection drops between the
// check and paho's (paho answers ErrNotConnected at once), it waits for the next
// connection and sends again.
func (c *Conn) whenUp(ctx context.Context, send func() mqtt.Token) (mqtt.Token, error) {
	t := getTimer(c.opts.ConnectTimeout)
	defer putTimer(t)
	sent := false // whether paho took the packet: until then, a failure means nothing went out
	fail := func(err error) (mqtt.Token, error) {
		if !sent {
			err = fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return nil, err
	}
	for {
		c.mu.Lock()
		up, closed := c.up.Wait(), c.closed
		c.mu.Unlock()
		if closed {
			return fail(errClosed)
		}
		select {
		case <-up:
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-c.life.Done():
			return fail(errClosed)
		case <-t.C:
			return fail(fmt.Errorf("%w: the connection did not come back within %v", mqtt.ErrNotConnected, c.opts.ConnectTimeout))
		}
		tok := send()
		sent = true
		select {
		case <-tok.Done():
			err := tok.Error()
			if !errors.Is(err, mqtt.ErrNotConnected) {
				return tok, err
			}
			sent = false // paho refused it without sending
			// Dropped an instant ago: let the reconnect loop see it before looking again.
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.life.Done():
			return nil, errClosed
		case <-t.C:
			return nil, fmt.Errorf("%w within %v", ErrNoAnswer, c.opts.ConnectTimeout)
		}
	}
}

// Close ends the Conn: it stops reconnecting, aborting an attempt in progress (except a
// ws:// or wss:// dial, which paho's websocket dialer bounds by the connect timeout
// only), sends DISCONNECT if connected, letting in-flight work finish for up to 250 ms,
// and waits for the connection's own goroutine. Publish and Subscribe calls waiting on it
// return an error. It is safe to call more than once.
func (c *Conn) Close() {
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if closed {
		return
	}
	c.end()
	<-c.loopDone
	c.client.Disconnect(250)
	c.setUp(false, nil)
}

// Up reports whether the connection is established now.
func (c *Conn) Up() bool { return c.up.Up() }

// setUp records a change of the connection's state, wakes whoever waits for the
// connection, and tells OnChange about real changes. Dial, then the reconnect loop, then
// Close call it, one after the other, so OnChange sees the changes in order.
func (c *Conn) setUp(up bool, lost error) {
	c.mu.Lock()
	changed := c.up.Set(up)
	c.mu.Unlock()
	if changed && c.opts.OnChange != nil {
		c.opts.OnChange(up, lost)
	}
}

// Connect failures fall in three classes, checked with errors.Is on Dial's error; the
// CLI maps each to its own exit code.
var (
	ErrUnreachable = errors.New("broker unreachable")             // refused, timed out, unresolvable: may pass
	ErrAuth        = errors.New("broker refused the credentials") // username, password, client id
	ErrTLS         = errors.New("TLS handshake failed")           // certificate not trusted, wrong host, not TLS
)

// Within their classes, some connect failures have a cause of their own that a caller may
// want to give advice about (the CLI names the flags that fix them); errors.Is finds them in
// Dial's error. A timed-out connect is ErrNoAnswer, of ErrUnreachable.
var (
	// ErrLogin is a broker that refused the username or password (of ErrAuth).
	ErrLogin = errors.New("broker refused the username or password")
	// ErrCertificate is a broker's certificate that failed verification: an unknown
	// authority, another host's, or otherwise not accepted (of ErrTLS). Connecting without
	// verification would get past it.
	ErrCertificate = errors.New("broker's certificate failed verification")
)

// connectError is a connect failure: one line for the user, a class for the exit code, the
// cause within the class when it has one, and the underlying error.
type connectError struct {
	msg   string
	class error
	cause error // nil, or one of ErrLogin, ErrCertificate, ErrNoAnswer
	err   error
}

func (e *connectError) Error() string { return e.msg }

func (e *connectError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.class, e.err}
	}
	return []error{e.class, e.cause, e.err}
}

// Explain turns a connect error into one line that names the cause, and gives it its class
// (and its cause within the class, if it has one) for errors.Is. What to do about it in
// terms of flags is the caller's to add.
func Explain(broker string, err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		recordErr tls.RecordHeaderError
		certErr   *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		netErr    net.Error
		says      string
		class     error
		cause     error
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		// mosquitto answers a wrong password with "not authorised" (CONNACK 5), others
		// with "bad user name or password" (4): the fix is the same.
		says, class, cause = "the broker refused the username or password", ErrAuth, ErrLogin
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		says, class = "the broker rejected the client id", ErrAuth
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		says, class = "the broker says it is unavailable", ErrUnreachable
	case errors.As(err, &unknownCA):
		says, class, cause = "TLS: the broker's certificate is signed by an unknown authority", ErrTLS, ErrCertificate
	case errors.As(err, &hostErr):
		says, class, cause = fmt.Sprintf("TLS: the broker's certificate is not valid for this host (%v)", hostErr), ErrTLS, ErrCertificate
	case errors.As(err, &certErr):
		says, class, cause = fmt.Sprintf("TLS: the broker's certificate was not accepted (%v)", certErr.Err), ErrTLS, ErrCertificate
	case errors.As(err, &recordErr), secure(broker) && errors.Is(err, syscall.ECONNRESET):
		// A plain MQTT listener answers a TLS hello with bytes that are not TLS, or (as
		// mosquitto does) by resetting the connection.
		says, class = "TLS: the broker did not answer with TLS (is this a plain MQTT port? use tcp:// instead of ssl://)", ErrTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		says, class = "connection refused (is a broker listening there?)", ErrUnreachable
	case errors.As(err, &dnsErr):
		says, class = fmt.Sprintf("cannot resolve host %q", dnsErr.Name), ErrUnreachable
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, ErrNoAnswer):
		says, class, cause = "no answer in time (check the address)", ErrUnreachable, ErrNoAnswer
	default:
		class = ErrUnreachable
	}
	msg := fmt.Sprintf("connect %s: %v", broker, err)
	if says != "" {
		msg = fmt.Sprintf("connect %s: %s: %v", broker, says, err)
	}
	return &connectError{msg: msg, class: class, cause: cause, err: err}
}

// Refused is the error of a CONNACK that refused the connection with code (MQTT 3.1.1
// return codes 1-5, MQTT 5 reason codes from 0x80), in the terms Explain classifies: a
// transport that reads CONNACK itself returns it so that its refusals have the same classes,
// causes and exit codes as paho's.
func Refused(code byte) error {
	switch code {
	case 0x86: // MQTT 5: bad user name or password
		return packets.ErrorRefusedBadUsernameOrPassword
	case 0x87, 0x8A: // not authorized, banned
		return packets.ErrorRefusedNotAuthorised
	case 0x85: // client identifier not valid
		return packets.ErrorRefusedIDRejected
	case 0x88, 0x89, 0x97, 0x9F: // server unavailable, busy, quota exceeded, connection rate exceeded
		return packets.ErrorRefusedServerUnavailable
	case 0x84: // unsupported protocol version
		return packets.ErrorRefusedBadProtocolVersion
	}
	if err, ok := packets.ConnErrors[code]; ok && err != nil {
		return err
	}
	return fmt.Errorf("broker refused the connection (code 0x%02x)", code)
}

// secure reports whether broker is a URL for MQTT over TLS.
func secure(broker string) bool {
	for _, scheme := range []string{"ssl://", "tls://", "mqtts://", "wss://"} {
		if strings.HasPrefix(broker, scheme) {
			return true
		}
	}
	return false
}
