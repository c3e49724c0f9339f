package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// The broker's listeners are its own rather than mochi's listeners.Net and
// listeners.Websocket, for four reasons:
//
//   - mochi's accept loop returns for good on the first Accept error, so a passing one such
//     as running out of file descriptors (EMFILE, likely with fleets of thousands of
//     connections) would silently stop the broker from accepting;
//   - mochi sets no deadline before CONNECT, and its Close disconnects only clients that
//     have sent CONNECT and then waits for all, so one silent connection blocks it forever;
//   - mochi's Close of a listener calls Server.closeListenerClients, which can deadlock
//     (see Broker.disconnectClients);
//   - mochi's websocket listener binds its own address and cannot take a net.Listener (see
//     wsListener).
//
// acceptListener is the part they share: a bound TCP listener that retries passing Accept
// errors, tracks accepted connections, and counts the goroutines serving them.

// acceptListener is a bound TCP listener, as a net.Listener for mochi's and net/http's
// accept loops.
type acceptListener struct {
	net.Listener
	log            *slog.Logger
	connectTimeout time.Duration // if > 0, a deadline set on each accepted connection

	mu     sync.Mutex
	closed bool                      // Close has been called
	conns  map[*trackedConn]struct{} // accepted connections not yet closed
	// active counts the goroutines of the accept loop and of each connection; begin adds
	// to it only while the listener is open, so wait never races with an Add.
	active sync.WaitGroup
}

// Accept waits for the next connection. It retries errors other than the listener being
// closed, with a backoff up to a second, logging each.
func (l *acceptListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", "error", err, "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		if l.connectTimeout > 0 {
			_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
		}
		tc := &trackedConn{Conn: c, l: l}
		l.mu.Lock()
		closed := l.closed
		if !closed {
			l.conns[tc] = struct{}{}
		}
		l.mu.Unlock()
		if closed {
			c.Close()
			return nil, net.ErrClosed
		}
		return tc, nil
	}
}

// Close stops accepting connections; those accepted stay open (see closeConns).
func (l *acceptListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// closeConns closes every accepted connection still open.
func (l *acceptListener) closeConns() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[*trackedConn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// begin counts a goroutine that serves the listener or one of its connections, and
// reports false, counting nothing, once the listener is closed.
func (l *acceptListener) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.active.Add(1)
	return true
}

// end uncounts a goroutine counted by begin.
func (l *acceptListener) end() { l.active.Done() }

// wait waits for the goroutines counted by begin. Call it after Close.
func (l *acceptListener) wait() { l.active.Wait() }

// trackedConn is an accepted connection that leaves its listener's set when closed.
type trackedConn struct {
	net.Conn
	l    *acceptListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// tcpListener serves MQTT over plain TCP. It implements mochi's listeners.Listener.
type tcpListener struct {
	id         string
	ln         *acceptListener
	log        *slog.Logger
	disconnect func(listener string) // disconnects the listener's connected clients
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

// Init is called by mochi's AddListener, before Serve and Close.
func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve is run by mochi in its own goroutine; it returns when the listener is closed.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	if !l.ln.begin() {
		return
	}
	defer l.ln.end()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.ln.begin() {
			c.Close()
			return
		}
		go func() {
			defer l.ln.end()
			if err := establish(l.id, c); err != nil {
				logEnd(l.log, err)
			}
		}()
	}
}

// Close stops accepting, disconnects the listener's clients, closes the connections that
// never sent CONNECT, and waits for every goroutine serving the listener. mochi's
// closeClients is not used (see Broker.disconnectClients). Once Close returns, every
// client goroutine of mochi's has ended, so mochi's own wait for them returns at once.
func (l *tcpListener) Close(listeners.CloseFn) {
	_ = l.ln.Close()
	l.disconnect(l.id)
	l.ln.closeConns()
	l.ln.wait()
}

// logEnd logs why a client's connection ended, at Info: ends such as a client going away
// without DISCONNECT, or the broker closing, are routine for a simulated fleet, and the
// default logger keeps only warnings.
func logEnd(log *slog.Logger, err error) {
	log.Info("client connection ended", "error", err)
}
