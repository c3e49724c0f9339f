package broker

// The observer hook: what the broker's clients do, told to a live view (the classroom,
// sim/classroom) without ever waiting for it.

import (
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
	// Published is called for each PUBLISH the broker accepted from a client, after it
	// was handed to the subscribers. payload is the broker's: read it during the call only.
	Published(id, topic string, qos byte, retained bool, payload []byte)
	// RetainedSent is called when the broker sends a retained message to a client that
	// subscribed (what a late subscriber gets at once). payload as for Published.
	RetainedSent(id, topic string, qos byte, payload []byte)
	// Dropped is called when a message for a client was dropped because the client's
	// outbound queue was full (a slow subscriber).
	Dropped(id, topic string)
}

// observeHook feeds an Observer from mochi's hooks.
type observeHook struct {
	mqtt.HookBase
	o Observer
}

func (*observeHook) ID() string { return "fleetsim-observe" }

func (*observeHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublished,
		mqtt.OnRetainPublished, mqtt.OnPublishDropped:
		return true
	}
	return false
}

func (h *observeHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.o.ClientConnected(cl.ID, string(cl.Properties.Username))
}

func (h *observeHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
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

func (h *observeHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if !h.o.Watching() {
		return
	}
	h.o.Published(cl.ID, pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.Payload)
}

func (h *observeHook) OnRetainPublished(cl *mqtt.Client, pk packets.Packet) {
	if !h.o.Watching() {
		return
	}
	h.o.RetainedSent(cl.ID, pk.TopicName, pk.FixedHeader.Qos, pk.Payload)
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
