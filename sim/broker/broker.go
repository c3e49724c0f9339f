// Package broker runs the embedded MQTT broker: mochi-mqtt (github.com/mochi-mqtt/server/v2)
// in the fleetsim process, listening on TCP and optionally on websockets, so a scenario with
// broker "embedded" needs nothing else installed.
//
// Start binds its listeners before returning, so a port of 0 works (Addr reports the real
// one) and a port already in use is reported at once with a hint. The listeners are this
// package's own rather than mochi's, so that accept errors are retried, silent connections
// time out and Close cannot hang (listen.go says why). Without Options.Users every client
// may connect and publish anywhere, which Start allows only on loopback unless
// Options.AllowAnonymousOffLoopback; with users, auth.go checks logins and topic ACLs.
// Per-client memory is tuned for fleets of many small clients (writesPending).
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultAddr is the TCP address used when Options.Addr is empty: the standard MQTT port
// on loopback only, since the simulator and its devices run on this machine.
const DefaultAddr = "127.0.0.1:1883"

// Tuning of mochi's capabilities; the rest keep mochi's defaults.
const (
	// writesPending is the length of each client's outbound queue (mochi's
	// Capabilities.MaximumClientWritesPending, default 8192). The queue is a channel of
	// packet pointers allocated whole at connect, so its length is paid by every client:
	// measured here (2000 idle clients, heap and stacks) ~90 KB per client at 8192,
	// ~35 KB at 1024 and ~26 KB at 64. A publish to a client whose queue is full is
	// dropped (Stats.MessagesDropped), so the queue must absorb a burst: a hub subscribed
	// to "home/N/#" receives every device of its home at once when a scenario starts.
	// 1024 keeps such bursts lossless for homes of hundreds of devices at ~40% of the
	// default's memory; 64 would save another ~9 KB a client but drop in bursts.
	writesPending = 1024
	// sysInterval is how often, in seconds, mochi refreshes its $SYS topics (default 1).
	// Each refresh reads runtime.MemStats (a brief stop-the-world) and republishes ~20
	// retained topics; 10 s is mosquitto's default sys_interval.
	sysInterval = 10
)

// connectTimeout bounds the time from accepting a connection (or upgrading it to a
// websocket) to reading its CONNECT packet. mochi sets no deadline of its own before
// CONNECT, and a connection stuck there would also hold up Close. Once CONNECT is read,
// mochi replaces the deadline with 1.5 times the client's keepalive. A variable for tests.
var connectTimeout = 30 * time.Second

// Options configures Start. The zero value listens on DefaultAddr, without websockets.
type Options struct {
	// Addr is the TCP listen address, "host:port"; "" means DefaultAddr. Port 0 picks a
	// free port (see Broker.Addr).
	Addr string
	// WSAddr is the websocket listen address, "host:port"; "" means no websocket
	// listener. Port 0 picks a free port (see Broker.WSURL).
	WSAddr string
	// Logger receives mochi's logs. nil keeps warnings and errors, written to stderr,
	// and discards mochi's per-client and lifecycle Info and Debug lines.
	Logger *slog.Logger
	// Users are the accounts clients must log in with, by username; nil or empty lets
	// anyone connect and publish anywhere. See auth.go for what students may write.
	Users map[string]User
	// AllowAnonymousOffLoopback lets Start listen on a non-loopback address without
	// Users; otherwise that is an error.
	AllowAnonymousOffLoopback bool
	// Observer, if set, is told about connections, subscriptions and publishes
	// (observe.go).
	Observer Observer
}

// Broker is a running embedded broker. Close it when done.
type Broker struct {
	srv *mqtt.Server
	tcp *acceptListener
	ws  *acceptListener // nil without a websocket listener

	// internalUser and internalPassword are fleetsim's own account when Options.Users is
	// set (see InternalCredentials); never logged.
	internalUser, internalPassword string

	closeOnce sync.Once
}

// Start starts a broker listening on opts.Addr (and opts.WSAddr if set). Both listeners
// are bound, and accept connections, when it returns.
func Start(opts Options) (*Broker, error) {
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	log = log.With("component", "embedded-broker")
	hook, internalUser, internalPassword, err := authFor(opts, addr)
	if err != nil {
		return nil, err
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = writesPending
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 log,
		SysTopicResendInterval: sysInterval,
	})
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if opts.Observer != nil {
		if err := srv.AddHook(&observeHook{o: opts.Observer}, nil); err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
	}

	b := &Broker{srv: srv, internalUser: internalUser, internalPassword: internalPassword}
	tcp, err := listen(addr, false, log)
	if err != nil {
		return nil, err
	}
	tcp.connectTimeout = connectTimeout
	b.tcp = tcp
	if opts.WSAddr != "" {
		if b.ws, err = listen(opts.WSAddr, true, log); err != nil {
			b.tcp.Close()
			return nil, err
		}
	}

	// Neither AddListener can fail: the IDs differ and Init only stores the logger.
	if err := srv.AddListener(&tcpListener{id: "tcp", ln: b.tcp, disconnect: b.disconnectClients}); err != nil {
		b.closeListeners()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if b.ws != nil {
		if err := srv.AddListener(newWSListener("ws", b.ws, b.disconnectClients)); err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
	}
	// Serve fails only for listeners and hooks given in mochi's own config, unused here.
	if err := srv.Serve(); err != nil {
		b.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return b, nil
}

// ListenError is Start's error when one of its listeners could not bind its address;
// errors.Is(err, syscall.EADDRINUSE) tells an address already taken.
type ListenError struct {
	WebSocket bool   // the websocket listener (Options.WSAddr), else the TCP one (Options.Addr)
	Addr      string // the address asked for
	Err       error  // from net.Listen
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("embedded broker: listen %s: %v (is another broker running?)", e.Addr, syscall.EADDRINUSE)
	}
	return "embedded broker: " + e.Err.Error()
}

func (e *ListenError) Unwrap() error { return e.Err }

// listen binds addr, the websocket listener's if ws.
func listen(addr string, ws bool, log *slog.Logger) (*acceptListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{WebSocket: ws, Addr: addr, Err: err}
	}
	return &acceptListener{Listener: ln, log: log, conns: map[*trackedConn]struct{}{}}, nil
}

func (b *Broker) closeListeners() {
	b.tcp.Close()
	if b.ws != nil {
		b.ws.Close()
	}
}

// Addr is the TCP address the broker listens on, with the real port, e.g. "127.0.0.1:41883".
func (b *Broker) Addr() string { return b.tcp.Addr().String() }

// URL is the broker's TCP address as a client URL, e.g. "tcp://127.0.0.1:41883". An
// unspecified listen host (":1883", "0.0.0.0:1883") is given as loopback, so that clients on
// this machine can dial it.
func (b *Broker) URL() string { return "tcp://" + dialable(b.Addr()) }

// WSURL is the websocket listener as a client URL, e.g. "ws://127.0.0.1:41884", or "" when
// the broker has no websocket listener. MQTT is served on every path.
func (b *Broker) WSURL() string {
	if b.ws == nil {
		return ""
	}
	return "ws://" + dialable(b.ws.Addr().String())
}

// dialable replaces an unspecified host in addr with the matching loopback address.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case ip == nil || !ip.IsUnspecified():
	case ip.To4() != nil:
		host = "127.0.0.1"
	default:
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// Close disconnects every client (MQTT 5 clients get a DISCONNECT with reason "server
// shutting down"), closes the listeners and waits for the broker's goroutines to end. It
// is safe to call more than once and always returns nil.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		// mochi's Close calls each listener's Close, which here stops accepting,
		// disconnects the listener's clients and waits for its goroutines (see
		// tcpListener.Close), then stops the hooks.
		_ = b.srv.Close()
	})
	return nil
}

// disconnectClients disconnects the connected clients of one listener, as mochi's own
// Server.closeListenerClients does. That one is not used because it can deadlock: it calls
// Clients.GetByListener, which takes the clients' read lock twice, and a client connecting
// or disconnecting in between (taking the write lock) blocks both forever (mochi-mqtt/server
// issue #488, unfixed in v2.7.9). GetAll takes the lock once.
func (b *Broker) disconnectClients(listener string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Stats is a snapshot of the broker's counters (mochi's system.Info, which also feeds the
// $SYS topics). Totals count from Start.
type Stats struct {
	ClientsConnected int64 // clients connected now
	Subscriptions    int64 // subscriptions held now
	MessagesReceived int64 // PUBLISH packets received, total
	MessagesSent     int64 // PUBLISH packets sent, total
	// MessagesDropped counts publishes not delivered because the subscriber's outbound
	// queue was full (a slow client), total.
	MessagesDropped int64
	// InflightDropped counts QoS 1 and 2 publishes not delivered because the subscriber
	// had too many unacknowledged ones, total.
	InflightDropped int64
	Inflight        int64 // QoS 1 and 2 messages awaiting acknowledgement now
	Retained        int64 // retained messages held now, including the broker's ~20 $SYS topics
	BytesReceived   int64 // total
	BytesSent       int64 // total
}

// Stats returns the broker's counters. It does not allocate and takes one brief lock, so
// it may be polled for metrics.
func (b *Broker) Stats() Stats {
	i := b.srv.Info
	return Stats{
		ClientsConnected: atomic.LoadInt64(&i.ClientsConnected),
		Subscriptions:    atomic.LoadInt64(&i.Subscriptions),
		MessagesReceived: atomic.LoadInt64(&i.MessagesReceived),
		MessagesSent:     atomic.LoadInt64(&i.MessagesSent),
		MessagesDropped:  atomic.LoadInt64(&i.MessagesDropped),
		InflightDropped:  atomic.LoadInt64(&i.InflightDropped),
		Inflight:         atomic.LoadInt64(&i.Inflight),
		// Info.Retained is refreshed only when a client retains a message, not when mochi
		// retains its $SYS topics, so ask the retained store itself.
		Retained:      int64(b.srv.Topics.Retained.Len()),
		BytesReceived: atomic.LoadInt64(&i.BytesReceived),
		BytesSent:     atomic.LoadInt64(&i.BytesSent),
	}
}

// allowAll lets every client connect and publish or subscribe to any topic; without an
// auth hook mochi refuses every connection. It does what mochi's hooks/auth.AllowHook does;
// that package is not used because it imports a YAML module (for its ledger) that this
// module does not otherwise need.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "fleetsim-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
