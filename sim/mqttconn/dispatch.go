package mqttconn

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// Receiver takes messages routed to one device. Deliver is called from the MQTT client's
// delivery goroutine and must not block: a full inbox drops and counts.
type Receiver interface {
	Deliver(m sim.Message)
}

// Dispatcher routes the messages arriving on one connection to the devices whose filters
// match, with MQTT wildcard semantics. A device with several matching filters gets the
// message once.
//
// A shared subscription "$share/{group}/{filter}" (see package topic) means "one of us":
// the broker gives each matching message to one member of the group, and a connection is
// one member however many of its devices subscribed. So the dispatcher hands each message
// that arrives for a shared subscription to one of the connection's devices that
// subscribed to it, in turn (round robin, so the split is even and repeatable), and not to
// all of them. A shared subscription is identified by its whole string, as brokers do:
// "$share/g/a/#" and "$share/g/b/#" are two subscriptions with two rotations.
//
// MQTT 3.1.1 does not say which subscription a message was sent for. When a device's
// plain subscription and a shared one on the same connection both match, the message goes
// to every plain subscriber and to one shared member, each device at most once per copy
// the broker sends (mochi-mqtt sends one copy, mosquitto one per matching subscription).
// Under MQTT 5 the broker names the subscriptions a copy is for, and DispatchFor routes it
// by them.
type Dispatcher struct {
	mu     sync.RWMutex
	routes []route       // plain subscriptions
	shares []*shareRoute // shared subscriptions, one per distinct "$share/..." string
}

type route struct {
	filter string
	to     Receiver
}

// shareRoute is one shared subscription and the receivers on this connection in its group.
type shareRoute struct {
	share   string        // the whole "$share/{group}/{filter}", as subscribed
	members []Receiver    // in the order they were added
	next    atomic.Uint64 // the number of messages handed out so far; picks the next member
}

// Add routes messages matching filter to r; adding the same route twice is a no-op. A
// shared subscription's filter adds r to that subscription's members (see Dispatcher).
func (d *Dispatcher) Add(filter string, r Receiver) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, _, ok := topic.SharedFilter(filter); ok {
		for _, s := range d.shares {
			if s.share == filter {
				if !slices.Contains(s.members, r) {
					s.members = append(s.members, r)
				}
				return
			}
		}
		d.shares = append(d.shares, &shareRoute{share: filter, members: []Receiver{r}})
		return
	}
	for _, rt := range d.routes {
		if rt.filter == filter && rt.to == r {
			return
		}
	}
	d.routes = append(d.routes, route{filter: filter, to: r})
}

// Dispatch delivers m to every receiver with a matching plain filter and to one member of
// each matching shared subscription, once each, and returns how many receivers got it. It
// never blocks on a receiver and does not allocate while no more than 16 receivers get a
// message.
func (d *Dispatcher) Dispatch(m sim.Message) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	// Receivers already served; a connection has few routes per message, so a small
	// slice on the stack beats a map.
	var servedBuf [16]Receiver
	served := servedBuf[:0]
	for _, rt := range d.routes {
		if !topic.Match(rt.filter, m.Topic) || slices.Contains(served, rt.to) {
			continue
		}
		served = append(served, rt.to)
		rt.to.Deliver(m)
	}
	for _, s := range d.shares {
		// Match removes the "$share/{group}/" itself, once, so an inner filter that
		// starts with "$share/" again is matched literally, as the broker does.
		if !topic.Match(s.share, m.Topic) {
			continue
		}
		served = s.deliver(m, served)
	}
	return len(served)
}

// DispatchFor is Dispatch for a copy of a message the broker sent for the subscriptions
// named in subs, by the filters as subscribed (MQTT 5 Subscription Identifiers, resolved
// by the client): it goes only to those subscriptions' receivers, once each, and for a
// shared one to one member in turn. So when a device's plain subscription and another's
// shared one overlap on one connection, each gets its own copy and not the other's.
func (d *Dispatcher) DispatchFor(m sim.Message, subs []string) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var servedBuf [16]Receiver
	served := servedBuf[:0]
	for _, rt := range d.routes {
		if !slices.Contains(subs, rt.filter) || slices.Contains(served, rt.to) {
			continue
		}
		served = append(served, rt.to)
		rt.to.Deliver(m)
	}
	for _, s := range d.shares {
		if slices.Contains(subs, s.share) {
			served = s.deliver(m, served)
		}
	}
	return len(served)
}

// deliver gives m to the group's member whose turn it is, unless that member was served
// already, and returns served with it. The group's turn passes either way: the group did
// get the message, through that member.
func (s *shareRoute) deliver(m sim.Message, served []Receiver) []Receiver {
	to := s.members[(s.next.Add(1)-1)%uint64(len(s.members))]
	if slices.Contains(served, to) {
		return served
	}
	to.Deliver(m)
	return append(served, to)
}
