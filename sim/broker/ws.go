package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over websockets (MQTT 3.1.1 §6, MQTT 5.0 §6) on an already bound
// listener. mochi's own listeners.Websocket binds its address inside its Serve goroutine
// and cannot take a net.Listener, so with it Start could neither report a port in use nor
// learn the real port of ":0" without a bind-close-rebind race (and see listen.go). It
// implements mochi's listeners.Listener.
type wsListener struct {
	id         string
	ln         *acceptListener
	disconnect func(listener string) // disconnects the listener's connected clients
	upgrader   websocket.Upgrader
	server     *http.Server
	log        *slog.Logger
	establish  listeners.EstablishFn
}

func newWSListener(id string, ln *acceptListener, disconnect func(string)) *wsListener {
	return &wsListener{
		id:         id,
		ln:         ln,
		disconnect: disconnect,
		upgrader: websocket.Upgrader{
			// §6.0: the server must select the "mqtt" subprotocol the client offers.
			Subprotocols: []string{"mqtt"},
			// Any page may connect: the broker is a local test fixture.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

// Init is called by mochi's AddListener, before Serve and Close.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.server = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: connectTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return nil
}

// Serve is run by mochi in its own goroutine; it returns when the listener is closed.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	if !l.ln.begin() {
		return
	}
	defer l.ln.end()
	l.establish = establish
	err := l.server.Serve(l.ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		l.log.Error("websocket listener stopped", "error", err)
	}
}

// handle upgrades one HTTP request, on any path, and runs it as an MQTT client.
func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	if !l.ln.begin() {
		http.Error(w, "broker shutting down", http.StatusServiceUnavailable)
		return
	}
	defer l.ln.end()
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has replied with an HTTP error
	}
	conn := &wsConn{ws: ws}
	_ = conn.SetDeadline(time.Now().Add(connectTimeout)) // until CONNECT, as for TCP
	if err := l.establish(l.id, conn); err != nil {
		logEnd(l.log, err)
	}
}

// Close is tcpListener.Close for websockets; it also closes the HTTP connections that
// have not become websockets.
func (l *wsListener) Close(listeners.CloseFn) {
	_ = l.ln.Close()
	l.disconnect(l.id)
	_ = l.server.Close()
	l.ln.closeConns() // websockets are hijacked from the HTTP server, which forgets them
	l.ln.wait()
}

// errNotBinary ends a websocket connection that sends a text frame: MQTT 3.1.1 §6.0 "MQTT
// Control Packets MUST be sent in WebSocket binary data frames. If any other type of data
// frame is received the recipient MUST close the Network Connection".
var errNotBinary = errors.New("websocket: MQTT over websockets needs binary frames")

// wsConn presents a websocket as the byte stream mochi reads packets from: packets may span
// frames and frames may hold several packets (§6.0), so frames are simply concatenated.
type wsConn struct {
	ws  *websocket.Conn
	cur io.Reader // the frame being read, or nil between frames

	// gorilla allows one writer at a time, and its write deadline is a plain field used
	// by the writer, so the deadline mochi sets from its reading goroutine is kept here
	// and applied by Write.
	writing       sync.Mutex
	writeDeadline atomic.Int64 // UnixNano; 0 means none
}

var _ net.Conn = (*wsConn)(nil)

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.cur = r
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.writing.Lock()
	defer c.writing.Unlock()
	var deadline time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		deadline = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(deadline) // never fails
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                      { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
	return nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.ws.SetReadDeadline(t)
}
