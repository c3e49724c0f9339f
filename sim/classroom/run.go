package classroom

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// maxDevices bounds the devices the Hub keeps: a classroom shows a few homes, and a fleet
// of a million devices must not cost the view a million records. Past it devices are only
// counted (Snapshot.DevicesTotal).
const maxDevices = 5000

// Device is a device as viewers see it.
type Device struct {
	Node    string   `json:"node"` // "d:<home>/<id>"
	Home    int      `json:"home"`
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Topic   string   `json:"topic"` // its base topic
	State   string   `json:"state,omitempty"`
	Filters []string `json:"filters,omitempty"`
	Client  string   `json:"client,omitempty"` // the connection it rides, once seen publishing
}

// Client is an MQTT client of the broker as viewers see it.
type Client struct {
	Node      string   `json:"node"` // "c:<client id>"
	ID        string   `json:"id"`
	User      string   `json:"user,omitempty"`
	Fleet     bool     `json:"fleet"` // one of fleetsim's own connections
	Connected bool     `json:"connected"`
	Filters   []string `json:"filters,omitempty"`
}

// Delivery is one subscriber a message reached, and the filter that matched.
type Delivery struct {
	Node   string `json:"node"`
	Filter string `json:"filter"`
}

// Msg is one publish as viewers see it.
type Msg struct {
	Seq      uint64     `json:"seq"`
	Time     int64      `json:"t"` // Unix milliseconds
	From     string     `json:"from"`
	Client   string     `json:"client"`
	Topic    string     `json:"topic"`
	QoS      byte       `json:"qos"`
	Retained bool       `json:"retained,omitempty"`
	Size     int        `json:"size"`
	Payload  string     `json:"payload,omitempty"`
	To       []Delivery `json:"to"`
}

// Edge is a message rate between a node and the broker ("broker"): publishes from a node,
// or deliveries to it, sent instead of each message above the animation limit.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	N    int    `json:"n"`
}

// Snapshot is a new viewer's first message.
type Snapshot struct {
	Type         string    `json:"type"` // "snapshot"
	Devices      []*Device `json:"devices"`
	DevicesTotal int       `json:"devices_total"`
	Clients      []*Client `json:"clients"`
	Last         []*Msg    `json:"last"` // the last message on each topic seen
	Blind        string    `json:"blind,omitempty"`
	AnimateLimit int       `json:"animate_limit"`
}

// state is what the Hub knows; only its goroutine touches it.
type state struct {
	devices      map[string]*Device // by node
	byTopic      map[string]*Device // by base topic
	devicesTotal int
	clients      map[string]*Client // by client id
	last         map[string]*Msg    // by topic
	seq          uint64
	count        int               // publishes in the current second
	rate         int               // publishes in the last whole second
	dcount       int               // deliveries in the current second
	drate        int               // deliveries in the last whole second
	aggregating  bool              // the last whole second was above the limit
	edges        map[[2]string]int // this second's, while aggregating
}

func newState() *state {
	return &state{devices: map[string]*Device{}, byTopic: map[string]*Device{}, clients: map[string]*Client{},
		last: map[string]*Msg{}, edges: map[[2]string]int{}}
}

func deviceNode(home int, id string) string { return "d:" + strconv.Itoa(home) + "/" + id }

// Run is the Hub's goroutine: it takes events in, keeps the state viewers join with, and
// fans out to them until ctx ends, when it closes every viewer's channel and returns.
func (h *Hub) Run(ctx context.Context) {
	defer close(h.done)
	h.idleBudget.Store(idlePerSecond)
	st := newState()
	viewers := map[*Viewer]struct{}{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	send := func(b []byte) {
		for v := range viewers {
			select {
			case v.C <- b:
			default:
				v.lost.Add(1)
				h.viewerLost.Add(1)
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			for v := range viewers {
				close(v.C)
			}
			h.viewers.Store(0)
			return
		case v := <-h.join:
			viewers[v] = struct{}{}
			h.viewers.Store(int32(len(viewers))) // counted before it hears anything
			if b := marshal(h.snapshot(st)); b != nil {
				v.C <- b // its queue is empty
			}
		case v := <-h.leave:
			if _, ok := viewers[v]; ok {
				delete(viewers, v)
				close(v.C)
				h.viewers.Store(int32(len(viewers)))
			}
		case e := <-h.in:
			if b := h.apply(st, *e); b != nil && len(viewers) > 0 {
				send(b)
			}
		case <-tick.C:
			h.idleBudget.Store(idlePerSecond)
			if b := h.second(st); b != nil && len(viewers) > 0 {
				send(b)
			}
		}
	}
}

// second closes a second of publishes: it returns the rates of the second's edges when
// the view was aggregating, else nil.
func (h *Hub) second(st *state) []byte {
	was := st.aggregating
	st.rate, st.count = st.count, 0
	st.drate, st.dcount = st.dcount, 0
	dlimit := deliveryFactor * h.animateLimit
	st.aggregating = st.rate > h.animateLimit || st.drate > dlimit
	h.sampleEvery.Store(sampling(st.rate, h.animateLimit))
	h.deliverEvery.Store(sampling(st.drate, dlimit))
	if !was && !st.aggregating {
		return nil
	}
	edges := make([]Edge, 0, len(st.edges))
	for k, n := range st.edges {
		edges = append(edges, Edge{From: k[0], To: k[1], N: n})
	}
	clear(st.edges)
	sort.Slice(edges, func(i, j int) bool { return edges[i].N > edges[j].N })
	if len(edges) > 200 {
		edges = edges[:200]
	}
	return marshal(map[string]any{"type": "rates", "per_sec": st.rate, "deliveries_per_sec": st.drate,
		"edges": edges, "limit": h.animateLimit})
}

// sampling is one in how many events the Hub takes at rate a second: all up to limit,
// and past it about half the limit a second, which tells the rates well enough.
func sampling(rate, limit int) int64 {
	if rate <= limit {
		return 1
	}
	return int64(max(1, 2*rate/limit))
}

func (h *Hub) snapshot(st *state) *Snapshot {
	s := &Snapshot{Type: "snapshot", DevicesTotal: st.devicesTotal, Blind: h.blind, AnimateLimit: h.animateLimit,
		Devices: []*Device{}, Clients: []*Client{}, Last: []*Msg{}}
	for _, d := range st.devices {
		s.Devices = append(s.Devices, d)
	}
	for _, c := range st.clients {
		s.Clients = append(s.Clients, c)
	}
	for _, m := range st.last {
		s.Last = append(s.Last, m)
	}
	sort.Slice(s.Devices, func(i, j int) bool { return s.Devices[i].Node < s.Devices[j].Node })
	sort.Slice(s.Clients, func(i, j int) bool { return s.Clients[i].ID < s.Clients[j].ID })
	sort.Slice(s.Last, func(i, j int) bool { return s.Last[i].Seq < s.Last[j].Seq })
	return s
}

// apply takes event e into st and returns the message for viewers, or nil.
func (h *Hub) apply(st *state, e event) []byte {
	switch e.kind {
	case "device":
		st.devicesTotal++
		if len(st.devices) >= maxDevices {
			return nil
		}
		d := &Device{Node: deviceNode(e.dev.Home, e.dev.ID), Home: e.dev.Home, ID: e.dev.ID, Kind: e.dev.Kind, Topic: e.dev.Topic}
		st.devices[d.Node] = d
		st.byTopic[d.Topic] = d
		return marshal(map[string]any{"type": "device", "device": d})
	case "state", "devsub":
		d := st.devices[deviceNode(e.home, e.id)]
		if d == nil {
			return nil
		}
		if e.kind == "state" {
			d.State = e.state
		} else if !slices.Contains(d.Filters, e.filters[0]) {
			d.Filters = append(d.Filters, e.filters[0])
		}
		return marshal(map[string]any{"type": "device", "device": d})
	case "publish":
		return h.publish(st, e)
	case "delivery", "retained":
		return h.delivery(st, e)
	case "dropped":
		return marshal(map[string]any{"type": "dropped", "client": e.client, "topic": e.topic, "t": e.at.UnixMilli()})
	default:
		return h.clientEvent(st, e)
	}
}

// clientEvent applies a connect, disconnect, subscribe or unsubscribe.
func (h *Hub) clientEvent(st *state, e event) []byte {
	c := st.clients[e.client]
	if c == nil {
		if e.kind == "disconnect" {
			return nil
		}
		c = &Client{Node: "c:" + e.client, ID: e.client, Fleet: strings.HasPrefix(e.client, FleetPrefix)}
		st.clients[e.client] = c
	}
	switch e.kind {
	case "connect":
		c.Connected, c.User = true, e.user
		c.Filters = nil // a clean session starts with none; a persistent one subscribes again
	case "disconnect":
		c.Connected = false
	case "subscribe":
		for _, f := range e.filters {
			if !slices.Contains(c.Filters, f) {
				c.Filters = append(c.Filters, f)
			}
		}
	case "unsubscribe":
		c.Filters = slices.DeleteFunc(c.Filters, func(f string) bool { return slices.Contains(e.filters, f) })
	}
	return marshal(map[string]any{"type": "client", "client": c})
}

// publish records a publish. Whom it reached comes after, delivery by delivery, from
// the broker; only a view told no deliveries (InferDeliveries) works them out here.
func (h *Hub) publish(st *state, e event) []byte {
	st.seq++
	st.count += max(e.weight, 1)
	m := &Msg{Seq: st.seq, Time: e.at.UnixMilli(), Client: e.client, Topic: e.topic, QoS: e.qos, Retained: e.retain,
		Size: e.size, Payload: e.payload, From: "c:" + e.client, To: []Delivery{}}
	if e.client == "" { // seen by a subscriber on an external broker: who sent it is not known
		m.From = UnknownNode
	}
	// A device's own topics are its reports, unless they are its commands, which others send.
	if d := deviceOf(st, e.topic); d != nil && !isCommand(e.topic) && (e.client == "" || strings.HasPrefix(e.client, FleetPrefix)) {
		m.From = d.Node
		if e.client != "" {
			d.Client = e.client
		}
	}
	if h.infer {
		m.To = deliveries(st, e.topic)
	}
	if _, ok := st.last[e.topic]; ok || len(st.last) < maxTopics {
		st.last[e.topic] = m
	}
	if st.aggregating {
		w := max(e.weight, 1)
		st.edges[[2]string{m.From, "broker"}] += w
		for _, t := range m.To {
			st.edges[[2]string{"broker", t.Node}] += w
		}
		return nil
	}
	return marshal(map[string]any{"type": "msg", "msg": m})
}

// maxTo bounds the deliveries a message keeps for the log (its subscribers).
const maxTo = 64

// delivery records a delivery the broker made: to the subscriber's node (or, behind one
// of fleetsim's connections, the devices on it whose filters match), with the filter that
// matched. A live one joins its publish (the last on its topic, if from its origin); a
// retained one sent on subscribe is a message of its own, from the broker.
func (h *Hub) delivery(st *state, e event) []byte {
	w := max(e.weight, 1)
	st.dcount += w
	to := reached(st, e.client, e.topic)
	if st.aggregating {
		for _, t := range to {
			st.edges[[2]string{"broker", t.Node}] += w
		}
		return nil
	}
	if e.kind == "retained" {
		st.seq++
		m := &Msg{Seq: st.seq, Time: e.at.UnixMilli(), From: "broker", Client: e.origin, Topic: e.topic, QoS: e.qos,
			Retained: true, Size: e.size, Payload: e.payload, To: to}
		return marshal(map[string]any{"type": "msg", "msg": m})
	}
	var seq uint64
	if m := st.last[e.topic]; m != nil && m.Client == e.origin {
		seq = m.Seq
		if len(m.To)+len(to) <= maxTo {
			m.To = append(m.To, to...)
		}
	}
	return marshal(map[string]any{"type": "delivery", "seq": seq, "topic": e.topic, "qos": e.qos,
		"t": e.at.UnixMilli(), "to": to})
}

// UnknownNode is the publisher of a message whose sender the view cannot see.
const UnknownNode = "c:(unknown)"

// isCommand reports whether name is a device command topic (broker.CommandFilters).
func isCommand(name string) bool { return matching(broker.CommandFilters, name) != "" }

// deviceOf is the device whose base topic name is under, or nil.
func deviceOf(st *state, name string) *Device {
	for t := name; ; {
		if d := st.byTopic[t]; d != nil {
			return d
		}
		i := strings.LastIndexByte(t, '/')
		if i < 0 {
			return nil
		}
		t = t[:i]
	}
}

// deliveries lists the subscribers a message on name reached, with the filter that
// matched: clients by their broker subscriptions, devices by their own filters (behind a
// shared fleetsim connection the broker sees only the connection).
func deliveries(st *state, name string) []Delivery {
	out := []Delivery{}
	fleet := map[string]bool{} // fleet connections whose devices are drawn instead
	for _, d := range st.devices {
		if c := st.clients[d.Client]; c != nil && !c.Connected {
			continue // unplugged
		}
		if f := matching(d.Filters, name); f != "" {
			out = append(out, Delivery{Node: d.Node, Filter: f})
			if d.Client != "" {
				fleet[d.Client] = true
			}
		}
	}
	for _, c := range st.clients {
		if !c.Connected || fleet[c.ID] || (c.Fleet && len(st.devices) > 0) {
			continue
		}
		if f := matching(c.Filters, name); f != "" {
			out = append(out, Delivery{Node: c.Node, Filter: f})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// reached is whom a delivery to client id of a message on name reached, with the filter
// that matched: behind one of fleetsim's connections the devices on it (or not yet seen
// on any) whose own filters match, else the client's own node and its matching filter (a
// "$share/{group}/" one for a shared subscription).
func reached(st *state, id, name string) []Delivery {
	out := []Delivery{}
	if strings.HasPrefix(id, FleetPrefix) {
		for _, d := range st.devices {
			if d.Client != id && d.Client != "" {
				continue
			}
			if f := matching(d.Filters, name); f != "" {
				out = append(out, Delivery{Node: d.Node, Filter: f})
			}
		}
		if len(out) > 0 {
			sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
			return out
		}
	}
	f := ""
	if c := st.clients[id]; c != nil {
		f = matching(c.Filters, name)
	}
	return append(out, Delivery{Node: "c:" + id, Filter: f})
}

// matching is the first of filters that matches name, or "".
func matching(filters []string, name string) string {
	for _, f := range filters {
		if topic.Match(f, name) {
			return f
		}
	}
	return ""
}
