// Package mqttconn owns fleetsim's MQTT connections. Many devices share one connection
// (per home, or a pool); each connection has one Dispatcher that routes incoming messages
// to the devices whose filters match, and the messages of a shared subscription
// ("$share/{group}/{filter}") to one of the devices that subscribed to it. It wraps
// github.com/eclipse/paho.mqtt.golang, and reads plain TCP through a read-ahead buffer
// (readahead.go).
package mqttconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/net/proxy"

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
	// tcp:// and ssl:// brokers.
	NetDial        func(ctx context.Context, network, addr string) (net.Conn, error)
	ConnectTimeout time.Duration // per attempt
	// RetryFor is how long Dial keeps retrying a broker it cannot reach (refused, timed
	// out, unresolvable), with exponential backoff and jitter. Refusals that retrying
	// cannot fix (credentials, TLS) fail at once. 0 means one attempt.
	RetryFor  time.Duration
	KeepAlive time.Duration
	// OnChange, optional, is told each time the connection goes up or down; lost is the
	// error when an established connection dropped (nil when it was closed on purpose).
	// It must not block.
	OnChange func(up bool, lost error)
}

func (o *Options) withDefaults() {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
}

// Conn is one MQTT connection, shared by the devices routed through its Dispatcher.
type Conn struct {
	client   mqtt.Client
	dispatch Dispatcher
	opts     Options

	up     atomic.Bool
	mu     sync.Mutex
	subQoS map[string]byte // highest QoS asked per filter, for resubscribing after a reconnect
	wg     sync.WaitGroup  // resubscribe goroutines
	closed bool
}

// Dial connects one client with the given client id and waits for the broker's CONNACK.
// Failures are explained in terms a user can act on (see Explain).
func Dial(ctx context.Context, opts Options, clientID string) (*Conn, error) {
	opts.withDefaults()
	c := &Conn{opts: opts, subQoS: map[string]byte{}}
	o := mqtt.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID(clientID).
		SetProtocolVersion(4). // MQTT 3.1.1; no silent fallback to 3.1
		SetCleanSession(true).
		SetKeepAlive(opts.KeepAlive).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.ConnectTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		// In-order delivery keeps per-stream order intact for the devices. It is safe
		// only because the handler never blocks: Dispatch does non-blocking sends.
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			c.dispatch.Dispatch(sim.Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.setUp(false, err) }).
		SetOnConnectHandler(func(mqtt.Client) { c.onConnect() })
	if opts.Username != "" {
		o.SetUsername(opts.Username)
	}
	if opts.Password != "" {
		o.SetPassword(opts.Password)
	}
	if opts.TLS != nil {
		o.SetTLSConfig(opts.TLS)
	}
	if dial := opts.NetDial; dial != nil || plainTCP(opts.Broker) {
		if dial == nil {
			dial = proxy.Dial // as paho dials tcp://: through $ALL_PROXY if set
		}
		o.SetCustomOpenConnectionFn(func(u *url.URL, co mqtt.ClientOptions) (net.Conn, error) {
			return dialVia(dial, u, co.TLSConfig, opts.ConnectTimeout)
		})
	}
	c.client = mqtt.NewClient(o)
	deadline := time.Now().Add(opts.RetryFor)
	for attempt := 0; ; attempt++ {
		err := wait(ctx, c.client.Connect(), opts.ConnectTimeout+time.Second)
		if err == nil {
			return c, nil
		}
		c.client.Disconnect(0)
		err = Explain(opts.Broker, err)
		pause := backoff(attempt)
		if ctx.Err() != nil || !errors.Is(err, ErrUnreachable) || time.Now().Add(pause).After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
	}
}

// dialVia opens a connection to u with dial, adding TLS for ssl:// URLs; plain TCP is read
// through readAhead.
func dialVia(dial func(ctx context.Context, network, addr string) (net.Conn, error), u *url.URL, tlsConf *tls.Config, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		return newReadAhead(conn), nil
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
		return nil, fmt.Errorf("a shaped link carries tcp:// and ssl:// brokers, not %s://", u.Scheme)
	}
}

// backoff is the pause before retry number attempt+1: exponential from 100 ms, capped at
// 5 s, with full jitter so that many clients retrying at once spread out.
func backoff(attempt int) time.Duration {
	ceiling := min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

// onConnect runs (in paho's own goroutine) after every successful connect. After a
// reconnect with a clean session, the broker has forgotten our subscriptions: send them again.
func (c *Conn) onConnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.setUp(true, nil)
	if len(c.subQoS) == 0 {
		return
	}
	filters := make(map[string]byte, len(c.subQoS))
	for f, q := range c.subQoS {
		filters[f] = q
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Best effort: a failure here shows as missing messages and lost-connection
		// counts; the next reconnect tries again.
		c.client.SubscribeMultiple(filters, nil).WaitTimeout(c.opts.ConnectTimeout)
	}()
}

// Subscribe routes messages matching filter to r and sends SUBSCRIBE, even when another
// device on this connection already subscribed to filter: the broker then re-sends the
// retained messages (MQTT 3.1.1 §3.8.4), so a device joining a shared connection late still
// sees the current state. Devices that were already routed see those retained messages
// again, which is why device models treat a repeated state as no change. It returns the
// QoS the broker granted.
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
		tok := c.client.Subscribe(filter, qos, nil)
		if err := wait(ctx, tok, c.opts.ConnectTimeout); err != nil {
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

// Publish sends one message and waits until it is complete for its QoS, ctx ends, or the
// connect timeout passes.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return wait(ctx, c.client.Publish(topic, qos, retained, payload), c.opts.ConnectTimeout)
}

// Close disconnects, letting in-flight work finish for up to 250 ms, and waits for the
// connection's own goroutines.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.client.Disconnect(250)
	c.wg.Wait()
	c.setUp(false, nil)
}

// Up reports whether the connection is established now.
func (c *Conn) Up() bool { return c.up.Load() }

// setUp records a change of the connection's state and tells OnChange about real changes.
func (c *Conn) setUp(up bool, lost error) {
	if c.up.Swap(up) != up && c.opts.OnChange != nil {
		c.opts.OnChange(up, lost)
	}
}

// wait waits for a paho token, bounded by ctx and timeout.
func wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := getTimer(timeout)
	defer putTimer(t)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %v", timeout)
	}
}

// Connect failures fall in three classes, checked with errors.Is on Dial's error; the
// CLI maps each to its own exit code.
var (
	ErrUnreachable = errors.New("broker unreachable")             // refused, timed out, unresolvable: may pass
	ErrAuth        = errors.New("broker refused the credentials") // username, password, client id
	ErrTLS         = errors.New("TLS handshake failed")           // certificate not trusted, wrong host, not TLS
)

// connectError is a connect failure: one line for the user, a class for the exit code,
// and the underlying error.
type connectError struct {
	msg   string
	class error
	err   error
}

func (e *connectError) Error() string   { return e.msg }
func (e *connectError) Unwrap() []error { return []error{e.class, e.err} }

// Explain turns a connect error into one line that names the cause and what to do.
func Explain(broker string, err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		recordErr tls.RecordHeaderError
		certErr   *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		netErr    net.Error
		cause     string
		class     error
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		// mosquitto answers a wrong password with "not authorised" (CONNACK 5), others
		// with "bad user name or password" (4): the fix is the same.
		cause, class = "the broker refused the username or password (check --username or FLEETSIM_USERNAME, and FLEETSIM_PASSWORD or --password-file)", ErrAuth
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		cause, class = "the broker rejected the client id", ErrAuth
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		cause, class = "the broker says it is unavailable", ErrUnreachable
	case errors.As(err, &unknownCA):
		cause, class = "TLS: the broker's certificate is signed by an unknown authority (give its CA with --ca-file)", ErrTLS
	case errors.As(err, &hostErr):
		cause, class = fmt.Sprintf("TLS: the broker's certificate is not valid for this host (%v)", hostErr), ErrTLS
	case errors.As(err, &certErr):
		cause, class = fmt.Sprintf("TLS: the broker's certificate was not accepted (%v)", certErr.Err), ErrTLS
	case errors.As(err, &recordErr), secure(broker) && errors.Is(err, syscall.ECONNRESET):
		// A plain MQTT listener answers a TLS hello with bytes that are not TLS, or (as
		// mosquitto does) by resetting the connection.
		cause, class = "TLS: the broker did not answer with TLS (is this a plain MQTT port? use tcp:// instead of ssl://)", ErrTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		cause, class = "connection refused (is a broker listening there?)", ErrUnreachable
	case errors.As(err, &dnsErr):
		cause, class = fmt.Sprintf("cannot resolve host %q", dnsErr.Name), ErrUnreachable
	case errors.As(err, &netErr) && netErr.Timeout(), strings.HasPrefix(err.Error(), "no answer from the broker"):
		cause, class = "no answer in time (check the address, or raise --connect-timeout on a slow link)", ErrUnreachable
	default:
		class = ErrUnreachable
	}
	if class == ErrTLS && !errors.As(err, &recordErr) && !errors.Is(err, syscall.ECONNRESET) {
		cause += "; --insecure-skip-verify turns verification off, for testing only"
	}
	msg := fmt.Sprintf("connect %s: %v", broker, err)
	if cause != "" {
		msg = fmt.Sprintf("connect %s: %s: %v", broker, cause, err)
	}
	return &connectError{msg: msg, class: class, err: err}
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
