package mqttconn

import (
	"strings"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// QoS2Seen holds the packet ids of the incoming QoS 2 messages a connection delivered
// and the broker has not yet released with PUBREL: MQTT 3.1.1 §4.3.3, method B. Until the
// PUBREL, a PUBLISH with the same id is the broker sending the same message again, to be
// acknowledged but not delivered twice. Every transport keeps one per connection; the zero
// value is ready.
type QoS2Seen struct {
	mu  sync.Mutex
	ids map[uint16]struct{}
}

// Deliver reports whether an incoming QoS 2 message with packet id id and DUP flag dup
// is to be delivered, and remembers the id. Only a re-sent message (dup) is held back:
// the broker sets DUP whenever it sends a message again (§3.3.1.1), and a first sending
// with an id the broker released is a new message.
func (s *QoS2Seen) Deliver(id uint16, dup bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.ids[id]; seen && dup {
		return false
	}
	if s.ids == nil {
		s.ids = map[uint16]struct{}{}
	}
	s.ids[id] = struct{}{}
	return true
}

// Release forgets id: the broker sent PUBREL for it, and may use it for a new message.
func (s *QoS2Seen) Release(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, id)
}

// Reset forgets every id, for a connection that starts a new session: the broker has no
// message of the old one to send again.
func (s *QoS2Seen) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.ids)
}

// trackingStore is paho's store for a connection, watching for the broker's PUBRELs:
// paho stores an incoming PUBREL under an inbound key ("i.<id>", see mqtt.Store) as it
// receives it, which is the one place where a paho user can see it.
type trackingStore struct {
	mqtt.Store
	seen *QoS2Seen
}

func (s *trackingStore) Put(key string, m packets.ControlPacket) {
	if rel, ok := m.(*packets.PubrelPacket); ok && strings.HasPrefix(key, "i.") {
		s.seen.Release(rel.MessageID)
	}
	s.Store.Put(key, m)
}
