// Package classroom is the classroom view: a live picture of publish/subscribe for a
// teacher's projector. Events (clients connecting, their subscriptions, each publish and
// each delivery the broker made of it, the devices' states) come from the embedded broker's hooks
// (broker.Observer) and from the runner (runner.Observer) into one Hub, which fans them out
// to the viewers' browsers over Server-Sent Events (server.go). The Hub never waits: what
// its queue or a slow viewer cannot take is dropped and counted, and the viewer is told.
package classroom

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// Sizes of the Hub's queues.
const (
	// queueSize is the Hub's inbox, between the broker's and devices' goroutines and the
	// Hub's own: past it events are dropped (Stats.QueueDropped).
	queueSize = 4096
	// viewerQueue is each viewer's outbox: a viewer that falls this far behind loses
	// events (Stats.ViewerDropped) and is told how many.
	viewerQueue = 512
	// maxPayload is how much of a payload an event carries, for the message log.
	maxPayload = 400
	// maxTopics bounds the last message kept per topic for viewers who join later.
	maxTopics = 2048
	// DefaultAnimateLimit is the publish rate (per second) above which the view stops
	// sending each message and sends rates per edge once a second instead.
	DefaultAnimateLimit = 300
	// deliveryFactor: the view also aggregates above this many deliveries per publish
	// the limit allows (a few subscribers each), and samples deliveries past it.
	deliveryFactor = 4
)

// FleetPrefix starts the client ids of fleetsim's own connections (runner.dialAll).
const FleetPrefix = "fleetsim-"

// Hub is the one fan-out of events to viewers. Make it with NewHub, start Run, and hand
// it to broker.Options.Observer and runner.Config.Observer.
type Hub struct {
	in    chan *event // by pointer: an event built on a device's goroutine (DeviceState) took its stack past 2 KiB
	join  chan *Viewer
	leave chan *Viewer

	viewers      atomic.Int32
	idleBudget   atomic.Int64 // publishes still taken this second while nobody watches
	published    atomic.Int64 // publishes offered (Published calls), total
	sampleEvery  atomic.Int64 // above the animation limit, one publish in this many is taken
	delivered    atomic.Int64 // deliveries offered while watched, total
	deliverEvery atomic.Int64 // likewise for deliveries
	queueDropped atomic.Int64
	viewerLost   atomic.Int64
	animateLimit int
	blind        string // what this view cannot see, "" when it sees everything
	infer        bool   // work deliveries out from the subscriptions (Options.InferDeliveries)

	done chan struct{}
}

// Options configure a Hub.
type Options struct {
	// AnimateLimit: see DefaultAnimateLimit (0 means it).
	AnimateLimit int
	// Blind, when set, is told to every viewer: what the view cannot see, e.g. other
	// clients' subscriptions when it watches an external broker from one subscriber.
	Blind string
	// InferDeliveries: the view is told no deliveries (an external broker, watched from
	// one subscriber), so it draws each publish to every subscription it knows that
	// matches. Without it only the deliveries the broker tells (Delivered) are drawn.
	InferDeliveries bool
}

// NewHub returns a Hub; it does nothing until Run.
func NewHub(o Options) *Hub {
	if o.AnimateLimit <= 0 {
		o.AnimateLimit = DefaultAnimateLimit
	}
	return &Hub{
		in: make(chan *event, queueSize), join: make(chan *Viewer), leave: make(chan *Viewer),
		animateLimit: o.AnimateLimit, blind: o.Blind, infer: o.InferDeliveries, done: make(chan struct{}),
	}
}

// Stats are the Hub's counters.
type Stats struct {
	Viewers       int   // connected now
	QueueDropped  int64 // events the Hub's own queue could not take
	ViewerDropped int64 // events dropped for viewers that fell behind, summed over viewers
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{Viewers: int(h.viewers.Load()), QueueDropped: h.queueDropped.Load(), ViewerDropped: h.viewerLost.Load()}
}

// event is one thing that happened, as the Hub's goroutine receives it.
type event struct {
	kind    string // connect, disconnect, subscribe, unsubscribe, publish, delivery, retained, dropped, device, state, devsub
	client  string
	origin  string // delivery, retained: who published it
	user    string
	filters []string
	topic   string
	qos     byte
	retain  bool
	size    int
	payload string
	at      time.Time
	dev     sim.DeviceConfig // device
	home    int              // state, devsub
	id      string           // state, devsub
	state   string
	weight  int // publish, delivery: how many it stands for (one in weight was taken)
}

// put queues e, or drops and counts it when the queue is full: it never waits.
func (h *Hub) put(e *event) {
	select {
	case h.in <- e:
	default:
		h.queueDropped.Add(1)
	}
}

// idlePerSecond is how many publishes a second the Hub takes while nobody watches, so
// that the first viewer's snapshot has the last message of each topic (a sensor's
// reading, the heater's set point) in a classroom, while a load run is not slowed.
const idlePerSecond = 100

// Watching reports whether the Hub wants publishes (broker.Observer): while a viewer is
// connected, or up to idlePerSecond a second without one.
func (h *Hub) Watching() bool { return h.viewers.Load() > 0 || h.idleBudget.Load() > 0 }

// ClientConnected implements broker.Observer.
func (h *Hub) ClientConnected(id, username string) {
	h.put(&event{kind: "connect", client: id, user: username})
}

// ClientDisconnected implements broker.Observer.
func (h *Hub) ClientDisconnected(id string) { h.put(&event{kind: "disconnect", client: id}) }

// Subscribed implements broker.Observer.
func (h *Hub) Subscribed(id string, filters []string) {
	h.put(&event{kind: "subscribe", client: id, filters: filters})
}

// Unsubscribed implements broker.Observer.
func (h *Hub) Unsubscribed(id string, filters []string) {
	h.put(&event{kind: "unsubscribe", client: id, filters: filters})
}

// Published implements broker.Observer: it copies what it keeps of payload.
func (h *Hub) Published(id, topic string, qos byte, retained bool, payload []byte) {
	if strings.HasPrefix(topic, "$") || (h.viewers.Load() == 0 && h.idleBudget.Add(-1) < 0) {
		return
	}
	// Above the animation limit the view shows rates: a sample of the publishes tells
	// them, and the broker's goroutines hand the Hub a few hundred events a second
	// rather than every one.
	every := max(h.sampleEvery.Load(), 1)
	if n := h.published.Add(1); n%every != 0 {
		return
	}
	h.put(&event{kind: "publish", client: id, topic: topic, qos: qos, retain: retained,
		size: len(payload), payload: shortPayload(payload), at: time.Now(), weight: int(every)})
}

// Delivered implements broker.Observer: a message the broker wrote to subscriber id (a
// retained one from its store, as id subscribed, when retained is set). It takes
// deliveries only while a viewer watches, one in deliverEvery above the limit, and
// allocates nothing for one it does not take.
func (h *Hub) Delivered(id, origin, topic string, qos byte, retained bool, payload []byte) {
	if h.viewers.Load() == 0 || strings.HasPrefix(topic, "$") {
		return
	}
	every := max(h.deliverEvery.Load(), 1)
	if n := h.delivered.Add(1); n%every != 0 {
		return
	}
	e := &event{kind: "delivery", client: id, origin: origin, topic: topic, qos: qos, retain: retained,
		at: time.Now(), weight: int(every)}
	if retained {
		e.kind, e.size, e.payload = "retained", len(payload), shortPayload(payload)
	}
	h.put(e)
}

// Dropped implements broker.Observer.
func (h *Hub) Dropped(id, topic string) {
	if h.viewers.Load() > 0 {
		h.put(&event{kind: "dropped", client: id, topic: topic, at: time.Now()})
	}
}

// DeviceAdded implements runner.Observer.
func (h *Hub) DeviceAdded(cfg sim.DeviceConfig) {
	cfg.Shared, cfg.Clock = nil, sim.Clock{} // keep only what says who it is
	h.put(&event{kind: "device", dev: cfg})
}

// DeviceState implements runner.Observer.
func (h *Hub) DeviceState(home int, id, state string) {
	h.put(&event{kind: "state", home: home, id: id, state: state})
}

// DeviceSubscribed implements runner.Observer.
func (h *Hub) DeviceSubscribed(home int, id, filter string) {
	h.put(&event{kind: "devsub", home: home, id: id, filters: []string{filter}})
}

// shortPayload is the start of payload as text, for the log: at most maxPayload bytes,
// with anything that is not printable UTF-8 shown as its size.
func shortPayload(p []byte) string {
	s := string(p[:min(len(p), maxPayload)])
	for _, r := range s {
		if r == 0xFFFD || (r < ' ' && r != '\n' && r != '\t') {
			return ""
		}
	}
	if len(p) > maxPayload {
		s += "…"
	}
	return s
}

// Viewer is one connected viewer: read its messages from C. Close it when done.
type Viewer struct {
	C    chan []byte // JSON messages, one event each; closed when the Hub stops
	lost atomic.Int64
	hub  *Hub
	once sync.Once
}

// Lost returns, and resets, how many events the viewer lost since it last asked.
func (v *Viewer) Lost() int64 { return v.lost.Swap(0) }

// Close leaves the Hub.
func (v *Viewer) Close() {
	v.once.Do(func() {
		select {
		case v.hub.leave <- v:
		case <-v.hub.done:
		}
	})
}

// Watch adds a viewer; its first message is a snapshot of what the Hub knows. It returns
// nil when ctx ends or the Hub has stopped before the viewer could join.
func (h *Hub) Watch(ctx context.Context) *Viewer {
	v := &Viewer{C: make(chan []byte, viewerQueue), hub: h}
	select {
	case h.join <- v:
		return v
	case <-ctx.Done():
	case <-h.done:
	}
	return nil
}

// marshal encodes a message for viewers, or returns nil if it cannot (the types sent hold
// only strings, numbers and bools, so it always can: a nil is skipped, never a panic).
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
