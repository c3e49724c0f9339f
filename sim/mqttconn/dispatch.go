package mqttconn

import (
	"sync"

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
type Dispatcher struct {
	mu     sync.RWMutex
	routes []route
}

type route struct {
	filter string
	to     Receiver
}

// Add routes messages matching filter to r; adding the same route twice is a no-op.
func (d *Dispatcher) Add(filter string, r Receiver) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, rt := range d.routes {
		if rt.filter == filter && rt.to == r {
			return
		}
	}
	d.routes = append(d.routes, route{filter: filter, to: r})
}

// Dispatch delivers m to every receiver with a matching filter, once each, and returns how
// many receivers got it. It never blocks on a receiver.
func (d *Dispatcher) Dispatch(m sim.Message) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	// Receivers already served; a connection has few routes per message, so a small
	// slice on the stack beats a map.
	var servedBuf [16]Receiver
	served := servedBuf[:0]
next:
	for _, rt := range d.routes {
		if !topic.Match(rt.filter, m.Topic) {
			continue
		}
		for _, s := range served {
			if s == rt.to {
				continue next
			}
		}
		served = append(served, rt.to)
		rt.to.Deliver(m)
	}
	return len(served)
}
