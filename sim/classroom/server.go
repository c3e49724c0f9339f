package classroom

// The HTTP side: the page (web/, embedded), its event stream (Server-Sent Events), and its
// controls, which publish over MQTT like any other client of the broker.

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/fleetsim/fleetsim/sim/broker"
)

//go:embed web
var webFS embed.FS

// Publisher sends one MQTT publish; mqttconn.Conn is one. The view's controls use it, so
// the page is just one more client of the broker.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
}

// ServerOptions configure the view's HTTP handler.
type ServerOptions struct {
	Hub *Hub
	// Publisher, if set, carries the controls' publishes; nil: the page has no controls.
	Publisher Publisher
	// Unplug, if set, drops a client's connection to the broker (broker.Broker.Disconnect).
	Unplug func(clientID string) bool
	// Users, if set, must log in (HTTP basic auth) with the broker's own accounts:
	// teachers get every control, students only publishes their broker ACL allows
	// (broker.StudentWritable). Without users every visitor is a teacher: loopback only.
	Users map[string]broker.User
}

// maxBody bounds a control request's body.
const maxBody = 4 << 10

// flushEvery is the shortest time between two flushes of a viewer's stream.
const flushEvery = 50 * time.Millisecond

// writeTimeout bounds each write to a viewer: one that takes no bytes for this long is
// dropped (it has been losing events all the while).
const writeTimeout = 10 * time.Second

type server struct {
	ServerOptions
	static http.Handler
}

// NewHandler returns the view's HTTP handler.
func NewHandler(o ServerOptions) http.Handler {
	sub, _ := fs.Sub(webFS, "web") // web is embedded: it exists
	s := &server{ServerOptions: o, static: http.FileServerFS(sub)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /api/me", s.me)
	mux.HandleFunc("POST /api/publish", s.publish)
	mux.HandleFunc("POST /api/unplug", s.unplug)
	mux.Handle("GET /", s.static)
	return s.login(securityHeaders(mux))
}

// who is a logged-in visitor.
type who struct {
	User    string `json:"user,omitempty"`
	Teacher bool   `json:"teacher"`
}

type whoKey struct{}

// login checks HTTP basic auth against Users; without Users everyone is a teacher.
func (s *server) login(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := who{Teacher: true}
		if s.Users != nil {
			name, pass, ok := r.BasicAuth()
			u, known := s.Users[name]
			// Compare even for an unknown name, so that timing does not tell which exist.
			good := subtle.ConstantTimeCompare([]byte(pass), []byte(u.Password)) == 1
			if !ok || !known || !good || name == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="fleetsim classroom", charset="UTF-8"`)
				http.Error(w, "log in with your classroom user", http.StatusUnauthorized)
				return
			}
			v = who{User: name, Teacher: u.Teacher}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, v)))
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func visitor(r *http.Request) who { v, _ := r.Context().Value(whoKey{}).(who); return v }

func (s *server) me(w http.ResponseWriter, r *http.Request) {
	v := visitor(r)
	writeJSON(w, map[string]any{"user": v.User, "teacher": v.Teacher,
		"controls": s.Publisher != nil, "unplug": s.Unplug != nil && v.Teacher})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// events streams the Hub's messages to one viewer as Server-Sent Events.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	v := s.Hub.Watch(r.Context())
	if v == nil {
		http.Error(w, "the run is over", http.StatusServiceUnavailable)
		return
	}
	defer v.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	st := &sseStream{w: w, rc: http.NewResponseController(w), v: v}
	if st.write(nil) != nil || st.rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		var b []byte
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
		case m, ok := <-v.C:
			if !ok {
				return
			}
			b = m
		}
		if st.write(b) != nil || !st.batch(r.Context(), b != nil) || st.rc.Flush() != nil {
			return
		}
	}
}

// sseStream writes one viewer's Server-Sent Events.
type sseStream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	v         *Viewer
	lastFlush time.Time
}

// write writes message b, or a ping for nil, telling first what the viewer lost.
func (st *sseStream) write(b []byte) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if n := st.v.Lost(); n > 0 {
		if _, err := fmt.Fprintf(st.w, "data: {\"type\":\"lost\",\"n\":%d}\n\n", n); err != nil {
			return err
		}
	}
	if b == nil {
		_, err := st.w.Write([]byte(": ping\n\n"))
		return err
	}
	_, err := fmt.Fprintf(st.w, "data: %s\n\n", b)
	return err
}

// batch readies a flush: after a message, at most one flush every flushEvery, with what
// else is waiting written too, so that the messages of a busy moment go out together and
// a viewer's goroutine wakes a few times a second, not per message. It reports false
// when the viewer is gone.
func (st *sseStream) batch(ctx context.Context, message bool) bool {
	if wait := flushEvery - time.Since(st.lastFlush); wait > 0 && message {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	st.lastFlush = time.Now()
	for len(st.v.C) > 0 && message {
		m, ok := <-st.v.C
		if !ok || st.write(m) != nil {
			return false
		}
	}
	return true
}

// control checks a control request: a JSON POST from the page's own origin (a form on
// another site cannot send one), decoded into v.
func control(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want Content-Type application/json", http.StatusUnsupportedMediaType)
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// publishRequest is POST /api/publish.
type publishRequest struct {
	Topic    string `json:"topic"`
	Payload  string `json:"payload"`
	QoS      byte   `json:"qos"`
	Retained bool   `json:"retained"`
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if !control(w, r, &req) {
		return
	}
	v := visitor(r)
	switch {
	case s.Publisher == nil:
		http.Error(w, "this view has no controls", http.StatusNotFound)
		return
	case req.Topic == "" || req.QoS > 2 || !validTopicName(req.Topic):
		http.Error(w, "want a topic name without wildcards and a QoS of 0, 1 or 2", http.StatusBadRequest)
		return
	case !v.Teacher && !broker.StudentWritable(v.User, req.Topic):
		http.Error(w, "students may publish only to device command topics and students/"+v.User+"/#", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.Publisher.Publish(ctx, req.Topic, []byte(req.Payload), req.QoS, req.Retained); err != nil {
		http.Error(w, "publish: "+err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]any{"ok": true})
}

func validTopicName(t string) bool {
	for _, c := range t {
		if c == '+' || c == '#' || c == 0 {
			return false
		}
	}
	return len(t) <= 1024
}

func (s *server) unplug(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Client string `json:"client"`
	}
	if !control(w, r, &req) {
		return
	}
	switch {
	case s.Unplug == nil:
		http.Error(w, "this view cannot unplug clients (an external broker)", http.StatusNotFound)
	case !visitor(r).Teacher:
		http.Error(w, "only teachers may unplug", http.StatusForbidden)
	case !s.Unplug(req.Client):
		http.Error(w, "no such client connected", http.StatusNotFound)
	default:
		writeJSON(w, map[string]any{"ok": true})
	}
}

// HTTPServer is the view's running HTTP server.
type HTTPServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen binds addr and serves h on it until Close.
func Listen(addr string, h http.Handler) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("classroom view: %w", err)
	}
	s := &HTTPServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // Serve fails only when the listener does; Close reports nothing more
		}
	}()
	return s, nil
}

// Addr is the address the view listens on, with its real port.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// URL is the view's address for a browser.
func (s *HTTPServer) URL() string { return "http://" + s.Addr() + "/" }

// Close stops the server, ending every viewer's stream, and waits for it.
func (s *HTTPServer) Close() {
	_ = s.srv.Close()
	<-s.done
}
