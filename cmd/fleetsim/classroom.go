package main

// The classroom view's wiring for `fleetsim run` (--ui): the Hub fed by the embedded
// broker's hooks and the runner, its HTTP server, and the MQTT client its controls publish
// with.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/classroom"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// defaultUI is --ui's default: loopback, where a teacher's own browser reaches it.
const defaultUI = "127.0.0.1:8080"

// viewClientID is the client id the view's controls publish with: it shows on the page as
// one more client.
const viewClientID = "classroom-view"

// uiWanted reports whether to serve the view for a run of n devices: --ui not "off", and,
// unless --ui was given, only for the embedded broker (against an external one the view
// needs a subscriber on '#', which a load test must not get unasked) and a fleet smaller
// than a large one (largeUI).
func uiWanted(f *runFlags, embedded bool, n int) bool {
	if f.ui == "off" || f.ui == "" {
		return false
	}
	return f.uiSet || embedded && !largeUI(f, n)
}

// largeUI reports whether the view is left off by default because the fleet of n devices is
// large (tune.go's largeFleet). The view hears of every device's every state change and of
// every message from the broker, it keeps at most a few thousand devices, and nobody
// watches a million devices on one page. --ui ADDR still serves it.
func largeUI(f *runFlags, n int) bool {
	return !f.uiSet && f.ui != "off" && f.ui != "" && n >= largeFleet
}

// checkUIAddr refuses a view off loopback that would let anyone in: it needs the broker's
// users (--broker-users) or --allow-anonymous, as the broker's own listener does.
func checkUIAddr(addr string, users map[string]broker.User, allowAnonymous bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("run: --ui %q: want host:port, or off", addr)
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return nil
	}
	if users == nil && !allowAnonymous {
		return usagef("run: --ui %s is not loopback: give --broker-users so the view asks for the class's logins (or --allow-anonymous)", addr)
	}
	return nil
}

// startView makes the view of a run of n devices when it is wanted (see uiWanted), or returns
// nil: every method of view is a no-op on nil. Its address is checked here, before the
// broker starts; it is served once the broker is up (serve, serveExternal).
func startView(f *runFlags, s *scenario.Scenario, n int, users map[string]broker.User, reg prometheus.Registerer, stderr io.Writer) (*view, error) {
	if s.Broker == scenario.Embedded && largeUI(f, n) {
		fmt.Fprintf(stderr, "fleetsim: %d devices: no classroom view for a large fleet (--ui %s serves it)\n", n, f.ui)
	}
	if !uiWanted(f, s.Broker == scenario.Embedded, n) {
		return nil, nil
	}
	if err := checkUIAddr(f.ui, users, f.allowAnonymous); err != nil {
		return nil, err
	}
	o := classroom.Options{}
	if s.Broker != scenario.Embedded {
		o.Blind = fmt.Sprintf(externalBlind, watchFilter(s.TopicPrefix))
		o.InferDeliveries = true // one subscriber sees publishes, not the broker's deliveries
	}
	v := newView(o)
	v.register(reg, s.Name)
	return v, nil
}

// brokerObserver is what the embedded broker tells the view, or nil without a view.
func (v *view) brokerObserver() broker.Observer {
	if v == nil {
		return nil
	}
	return v.hub
}

// runObserver is what the runner tells the view, or nil without a view.
func (v *view) runObserver() runner.Observer {
	if v == nil {
		return nil
	}
	return v.hub
}

// view is a running classroom view.
type view struct {
	hub     *classroom.Hub
	srv     *classroom.HTTPServer
	control *lazyConn
	stopHub context.CancelFunc
	hubDone chan struct{}
}

// externalBlind is what the view says it cannot see of an external broker.
const externalBlind = "External broker: this view sees the messages through one subscriber on %s. " +
	"It cannot see the other clients, their subscriptions or who sent a message that is not a fleetsim device's: " +
	"deliveries are drawn to fleetsim's devices only."

// newView makes the Hub and starts its goroutine; serve (or serveExternal) starts the
// HTTP side once the broker is up.
func newView(o classroom.Options) *view {
	ctx, cancel := context.WithCancel(context.Background())
	v := &view{hub: classroom.NewHub(o), stopHub: cancel, hubDone: make(chan struct{})}
	go func() { defer close(v.hubDone); v.hub.Run(ctx) }()
	return v
}

// serve starts the view's HTTP server on f.ui. A busy default address is a warning, not a
// failure: a run nobody asked a view of (a test, a second run beside a first) goes on
// without one. An address given with --ui must bind.
func (v *view) serve(f *runFlags, b *broker.Broker, users map[string]broker.User, conn mqttconn.Options, stderr io.Writer) error {
	if v == nil {
		return nil
	}
	conn.Broker = b.URL()
	if user, password := b.InternalCredentials(); user != "" {
		conn.Username, conn.Password = user, password
	}
	v.control = &lazyConn{opts: conn}
	return v.listen(f, classroom.ServerOptions{Hub: v.hub, Publisher: v.control, Unplug: b.Disconnect, Users: users}, stderr)
}

// serveExternal serves the view of an external broker: one subscriber on filter feeds the
// Hub, and the controls publish on the same connection.
func (v *view) serveExternal(ctx context.Context, f *runFlags, filter string, conn mqttconn.Options, stderr io.Writer) error {
	if v == nil {
		return nil
	}
	c, err := mqttconn.Dial(ctx, conn, viewClientID)
	if err != nil {
		return fmt.Errorf("classroom view: %w", err)
	}
	v.control = &lazyConn{c: c}
	if _, err := c.Subscribe(ctx, filter, 0, watcher{v.hub}); err != nil {
		return fmt.Errorf("classroom view: subscribe %s: %w", filter, err)
	}
	return v.listen(f, classroom.ServerOptions{Hub: v.hub, Publisher: v.control}, stderr)
}

// watcher hands what the view's subscriber receives to the Hub.
type watcher struct{ hub *classroom.Hub }

func (w watcher) Deliver(m sim.Message) {
	if w.hub.Watching() {
		w.hub.Published("", m.Topic, m.QoS, m.Retained, m.Payload)
	}
}

// watchFilter is what the view subscribes to on an external broker: the static start of
// the scenario's topic prefix ("home/{home}" gives "home/#"), or everything.
func watchFilter(prefix string) string {
	static, _, _ := strings.Cut(prefix, "{")
	if i := strings.LastIndexByte(static, '/'); i > 0 {
		return static[:i] + "/#"
	}
	return "#"
}

// listen starts the HTTP server (see serve).
func (v *view) listen(f *runFlags, o classroom.ServerOptions, stderr io.Writer) error {
	users := o.Users
	srv, err := classroom.Listen(f.ui, classroom.NewHandler(o))
	if err != nil {
		if !f.uiSet && errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "fleetsim: classroom view not served: %s is in use (give --ui ADDR for another address)\n", f.ui)
			return nil
		}
		return fmt.Errorf("%w (use --ui to pick another address, or off)", err)
	}
	v.srv = srv
	login := ""
	if users != nil {
		login = " (log in with a --broker-users account)"
	}
	fmt.Fprintf(stderr, "fleetsim: classroom view on http://%s/%s\n", dialableAddr(srv.Addr()), login)
	return nil
}

// register puts the Hub's counters on reg: viewers connected, and events dropped by the
// Hub's queue (where="hub") and for viewers that fell behind (where="viewer").
func (v *view) register(reg prometheus.Registerer, scenario string) {
	labels := func(where string) prometheus.Labels {
		l := prometheus.Labels{"scenario": scenario}
		if where != "" {
			l["where"] = where
		}
		return l
	}
	const dropped = "Classroom view events dropped: by the view's own queue (hub), or for a viewer that fell behind (viewer, summed over viewers)."
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fleetsim_classroom_viewers", Help: "Viewers of the classroom view connected now.",
			ConstLabels: labels("")}, func() float64 { return float64(v.hub.Stats().Viewers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fleetsim_classroom_events_dropped_total", Help: dropped,
			ConstLabels: labels("hub")}, func() float64 { return float64(v.hub.Stats().QueueDropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fleetsim_classroom_events_dropped_total", Help: dropped,
			ConstLabels: labels("viewer")}, func() float64 { return float64(v.hub.Stats().ViewerDropped) }),
	)
}

// close stops the HTTP server, the control connection and the Hub.
func (v *view) close() {
	if v == nil {
		return
	}
	if v.srv != nil {
		v.srv.Close()
	}
	if v.control != nil {
		v.control.Close()
	}
	v.stopHub()
	<-v.hubDone
}

// dialableAddr gives an unspecified host (0.0.0.0, ::) as loopback, for a browser here.
func dialableAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// lazyConn is the view's MQTT client, connected on its first publish: a run whose view is
// never used has no extra client on its broker.
type lazyConn struct {
	opts mqttconn.Options
	mu   sync.Mutex
	c    *mqttconn.Conn
}

func (l *lazyConn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	l.mu.Lock()
	if l.c == nil {
		c, err := mqttconn.Dial(ctx, l.opts, viewClientID)
		if err != nil {
			l.mu.Unlock()
			return err
		}
		l.c = c
	}
	c := l.c
	l.mu.Unlock()
	return c.Publish(ctx, topic, payload, qos, retained)
}

func (l *lazyConn) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.Close()
	}
}
