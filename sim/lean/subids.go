package lean

import (
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim"
)

// subIDs numbers a connection's subscriptions for MQTT 5's Subscription Identifiers
// (§3.8.2.1.2): each filter gets an id at its first Subscribe, for good; every SUBSCRIBE of
// it carries the id, and the broker names in each PUBLISH the ids of the subscriptions it
// sent that copy for. A connection whose devices' subscriptions overlap (one device's plain
// "a/#" and another's "$share/g/a/#") can then give each copy to the subscription it is for
// (mqttconn.Dispatcher.DispatchFor), where under 3.1.1 both devices get both copies.
type subIDs struct {
	ids   map[string]int           // filter → id; guarded by the Conn's mu
	names atomic.Pointer[[]string] // id-1 → filter, copied on write: the reader's, lock-free
}

// id returns filter's id, giving it the next one at its first call. The Conn's mu is held.
func (s *subIDs) id(filter string) int {
	if id, ok := s.ids[filter]; ok {
		return id
	}
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	var names []string
	if old := s.names.Load(); old != nil {
		names = append(names, *old...)
	}
	names = append(names, filter)
	s.ids[filter] = len(names)
	s.names.Store(&names)
	return len(names)
}

// filters appends to buf the filters of ids; nil if one is not an id of ours (the broker
// then is not routing by them, and the message goes by its topic).
func (s *subIDs) filters(ids []int, buf []string) []string {
	names := s.names.Load()
	if names == nil {
		return nil
	}
	for _, id := range ids {
		if id < 1 || id > len(*names) {
			return nil
		}
		buf = append(buf, (*names)[id-1])
	}
	return buf
}

// subIDsOffered reports whether a broker's CONNACK lets a client use subscription
// identifiers: under MQTT 5, unless it says they are not available (absent means they are).
func subIDsOffered(proto byte, ack *packets.Packet) bool {
	return proto == MQTT5 && !(ack.Properties.SubIDAvailableFlag && ack.Properties.SubIDAvailable == 0)
}

// route hands a message from the broker to the devices it is for: by the subscription
// identifiers it carries, when they are all ours, else by its topic.
func (c *Conn) route(pk *packets.Packet) {
	m := sim.Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retained: pk.FixedHeader.Retain}
	if ids := pk.Properties.SubscriptionIdentifier; len(ids) > 0 {
		var buf [4]string
		if subs := c.subIDs.filters(ids, buf[:0]); subs != nil {
			c.dispatch.DispatchFor(m, subs)
			return
		}
	}
	c.dispatch.Dispatch(m)
}
