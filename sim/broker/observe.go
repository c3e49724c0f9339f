package broker

// The observer hook: what the broker's clients do, told to a live view (the classroom,
// sim/classroom) without ever waiting for it.

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Observer is told what the broker's clients do. Its methods are called on the broker's
// own goroutines, in the middle of handling a packet: they must return at once (drop what
// they cannot take) and must not call back into the broker.
type Observer interface {
	// ClientConnected is called when a client's session is established.
	ClientConnected(id, username string)
	// ClientDisconnected is called when a client's connection ends, for any reason.
	ClientDisconnected(id string)
	// Subscribed is called with the filters the broker granted a client.
	Subscribed(id string, filters []string)
	// Unsubscribed is called with the filters a client dropped.
	Unsubscribed(id string, filters []string)
	// Watching reports whether anyone is watching: when not, Published is not called,
	// so that an observer without viewers costs each publish one atomic load.
	Watching() bool
	// Published is called for each PUBLISH the broker accepted from a client, before it
	// is handed to the subscribers (so before any Delivered for it). payload is the
	// broker's: read it during the call only.
	Published(id, topic string, qos byte, retained bool, payload []byte)
	// Delivered is called for each PUBLISH the broker wrote to a subscriber id: a live
	// message, or with retained set one from the broker's store sent as the client
	// subscribed (MQTT 3.1.1 clears the flag on live deliveries). origin is the client
	// that published it. A shared subscription's message is delivered to one member of
	// the group, so it is told once. It is called on the subscriber's writing goroutine
	// for every delivery while Watching: it must not allocate when it takes nothing.
	// payload as for Published.
	Delivered(id, origin, topic string, qos byte, retained bool, payload []byte)
	// Dropped is called when a message for a client was dropped because the client's
	// outbound queue was full (a slow subscriber).
	Dropped(id, topic string)
}

// observeHook feeds an Observer from mochi's hooks.
type observeHook struct {
	mqtt.HookBase
	o       Observer
	aliases outboundAliases
}

func (*observeHook) ID() string { return "fleetsim-observe" }

func (*observeHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublish,
		mqtt.OnPacketSent, mqtt.OnPublishDropped:
		return true
	}
	return false
}

func (h *observeHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.o.ClientConnected(cl.ID, string(cl.Properties.Username))
}

func (h *observeHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.aliases.forget(cl)
	h.o.ClientDisconnected(cl.ID)
}

func (h *observeHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	filters := make([]string, 0, len(pk.Filters))
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < 0x80 { // granted (a QoS), not a failure reason
			filters = append(filters, f.Filter)
		}
	}
	if len(filters) > 0 {
		h.o.Subscribed(cl.ID, filters)
	}
}

func (h *observeHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	filters := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		filters[i] = f.Filter
	}
	h.o.Unsubscribed(cl.ID, filters)
}

// OnPublish tells the publish before mochi hands it to the subscribers, so that the
// observer hears of it before its deliveries. No hook of fleetsim's rejects a publish
// here (authorisation is OnACLCheck, earlier), so each one told goes on to subscribers.
func (h *observeHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.o.Watching() {
		h.o.Published(cl.ID, pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.Payload)
	}
	return pk, nil
}

// OnPacketSent tells each PUBLISH written to a client: one per delivery, whichever way
// mochi chose its subscribers (one member of a shared subscription's group). A resend
// (DUP) is not a new delivery. To an MQTT 5 client that takes topic aliases mochi sends a
// topic's name once with its alias, then the alias alone: the hook keeps the names.
func (h *observeHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup {
		return
	}
	name := pk.TopicName
	if a := pk.Properties.TopicAlias; a > 0 {
		if name != "" {
			h.aliases.keep(cl, a, name)
		} else if h.o.Watching() {
			name = h.aliases.name(cl, a)
		}
	}
	if name == "" || !h.o.Watching() {
		return
	}
	h.o.Delivered(cl.ID, pk.Origin, name, pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.Payload)
}

// outboundAliases are the topic aliases mochi gave each client's deliveries: at most the
// client's Topic Alias Maximum of them (mochi never reassigns one), until it disconnects.
type outboundAliases struct {
	mu sync.RWMutex
	by map[string]*clientAliases // by client id
}

type clientAliases struct {
	cl    *mqtt.Client // the connection they belong to: a client id may connect again
	names map[uint16]string
}

// keep notes that alias a stands for name in cl's deliveries; once noted it costs a look.
func (o *outboundAliases) keep(cl *mqtt.Client, a uint16, name string) {
	o.mu.RLock()
	c := o.by[cl.ID]
	known := c != nil && c.cl == cl && c.names[a] == name
	o.mu.RUnlock()
	if known {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.by == nil {
		o.by = map[string]*clientAliases{}
	}
	if c = o.by[cl.ID]; c == nil || c.cl != cl {
		c = &clientAliases{cl: cl, names: map[uint16]string{}}
		o.by[cl.ID] = c
	}
	c.names[a] = name
}

// name is the topic alias a stands for in cl's deliveries, or "" if not known.
func (o *outboundAliases) name(cl *mqtt.Client, a uint16) string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if c := o.by[cl.ID]; c != nil && c.cl == cl {
		return c.names[a]
	}
	return ""
}

// forget drops cl's aliases when it disconnects.
func (o *outboundAliases) forget(cl *mqtt.Client) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.by[cl.ID]; c != nil && c.cl == cl {
		delete(o.by, cl.ID)
	}
}

func (h *observeHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if !h.o.Watching() {
		return
	}
	h.o.Dropped(cl.ID, pk.TopicName)
}

// Disconnect drops the connection of the client with id, as if its network went away (a
// classroom's "unplug"): it reports whether such a client was connected. The client's
// retained messages stay, and its will, if any, is published.
func (b *Broker) Disconnect(id string) bool {
	cl, ok := b.srv.Clients.Get(id)
	if !ok || cl.Closed() {
		return false
	}
	cl.Stop(packets.ErrServerShuttingDown)
	return true
}
