package lean

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT 5's features beyond the Receive Maximum: publish properties (user properties and
// message expiry), session expiry, topic aliases both ways, and reason codes with their
// names.

// Props are the MQTT 5 properties sent on a publish: made once (per device, say) and
// shared read-only by every publish that carries them. Under MQTT 3.1.1 they are not sent.
type Props struct {
	// User are the user properties, in order (MQTT 5 §3.3.2.3.7).
	User []packets.UserProperty
	// MessageExpiry, if positive, is how long the broker keeps the message for a
	// subscriber that has not had it yet (a queued or retained copy): the Message Expiry
	// Interval, in whole seconds rounded up.
	MessageExpiry time.Duration
}

// TopicAliasMax is the Topic Alias Maximum the client sends in its MQTT 5 CONNECT with a
// clean session: the broker may give up to this many of the topics it sends aliases. A
// PUBLISH with a higher alias, or with an alias the broker never set on the connection,
// is a protocol error that drops the connection (counted as malformed).
//
// A persistent session takes no aliases from the broker (it sends no Topic Alias
// Maximum): a broker may hand a resumed session the messages it queued with aliases of
// an earlier connection, which the client cannot resolve (mochi-mqtt 2.7.9 does).
const TopicAliasMax = 64

// aliasesIn is the highest topic alias the broker may send on the connection.
func (c Config) aliasesIn() uint16 {
	if c.Protocol != MQTT5 || c.Persistent {
		return 0
	}
	return TopicAliasMax
}

// NeverExpires is the Session Expiry Interval of a session the broker keeps for good.
const NeverExpires = 0xFFFFFFFF

// seconds is d in whole seconds rounded up, at least 1, at most NeverExpires-1: an
// expiry interval that does expire.
func seconds(d time.Duration) uint32 {
	s := (d + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), NeverExpires-1))
}

// sessionExpiry is the Session Expiry Interval a persistent MQTT 5 session asks for.
func (c Config) sessionExpiry() uint32 {
	if c.SessionExpiry <= 0 {
		return NeverExpires // MQTT 5 ends a session at the disconnect unless told (§3.1.2.11.2)
	}
	return seconds(c.SessionExpiry)
}

// setProps puts props on pk, a PUBLISH under MQTT 5.
func setProps(pk *packets.Packet, props *Props) {
	if props == nil || pk.ProtocolVersion != MQTT5 {
		return
	}
	pk.Properties.User = props.User
	if props.MessageExpiry > 0 {
		pk.Properties.MessageExpiryInterval = seconds(props.MessageExpiry)
	}
}

// aliasesOut are the topic aliases a wire gives its topics, up to the broker's Topic
// Alias Maximum. They are the wire's: a new connection starts with none (§3.3.2.3.4).
type aliasesOut struct {
	max  uint16            // the broker's Topic Alias Maximum; 0: none allowed
	of   map[string]uint16 // alias by topic
	next uint16            // the last alias given
}

// encodeAliased encodes pk (a PUBLISH) into buf with the topic's alias: the topic and a new
// alias the first time while aliases are left, then the alias alone (empty topic). A topic
// without an alias is encoded as it is. The caller holds the wire's lock, so that the
// packet setting an alias is written before those using it.
func (a *aliasesOut) encodeAliased(pk *packets.Packet, buf *bytes.Buffer) error {
	if a.max == 0 || pk.ProtocolVersion != MQTT5 {
		return pk.PublishEncode(buf)
	}
	alias, known := a.of[pk.TopicName]
	if !known {
		if a.next >= a.max {
			return pk.PublishEncode(buf) // every alias is taken
		}
		if a.of == nil {
			a.of = map[string]uint16{}
		}
		a.next++
		alias = a.next
		a.of[pk.TopicName] = alias
	}
	out := *pk
	out.Properties.TopicAlias, out.Properties.TopicAliasFlag = alias, true
	if known {
		out.TopicName = ""
	}
	return out.PublishEncode(buf)
}

// resolveAlias gives an incoming MQTT 5 PUBLISH with a topic alias its topic: the broker's
// alias for its topic is set by a PUBLISH with both, and used by later ones with the alias
// alone. in is the wire's (its reader's alone).
func resolveAlias(in *map[uint16]string, pk *packets.Packet, limit uint16) error {
	a := pk.Properties.TopicAlias
	if !pk.Properties.TopicAliasFlag {
		return nil
	}
	if a == 0 || a > limit {
		return fmt.Errorf("%w: topic alias %d beyond the %d allowed", ErrMalformed, a, limit)
	}
	if pk.TopicName != "" {
		if *in == nil {
			*in = map[uint16]string{}
		}
		(*in)[a] = pk.TopicName
		return nil
	}
	t, ok := (*in)[a]
	if !ok {
		return fmt.Errorf("%w: topic alias %d was never set", ErrMalformed, a)
	}
	pk.TopicName = t
	return nil
}

// ErrRefused marks (errors.Is) a publish or subscription the broker refused with an MQTT
// 5 reason code (a ReasonError): it took the packet and will not deliver it.
var ErrRefused = errors.New("refused by the broker")

// ReasonError is an MQTT 5 failure reason code (0x80 and above) on a PUBACK, PUBREC,
// PUBCOMP or SUBACK, with its name.
type ReasonError struct {
	What string // "publish" or "subscription"
	Code byte
}

func (e *ReasonError) Error() string {
	return fmt.Sprintf("the broker refused the %s: %s (reason code 0x%02x)", e.What, ReasonName(e.Code), e.Code)
}

// Is makes a ReasonError ErrRefused.
func (e *ReasonError) Is(target error) bool { return target == ErrRefused }

// ReasonName is the name MQTT 5 gives a reason code, as mochi-mqtt's packets spell it.
func ReasonName(code byte) string {
	if c, ok := reasonNames[code]; ok {
		return c.Reason
	}
	return "unknown reason"
}

// reasonNames are the failure reason codes an acknowledgement may carry, by code.
var reasonNames = func() map[byte]packets.Code {
	m := map[byte]packets.Code{}
	for _, c := range []packets.Code{
		packets.ErrUnspecifiedError, packets.ErrImplementationSpecificError, packets.ErrNotAuthorized,
		packets.ErrTopicFilterInvalid, packets.ErrTopicNameInvalid, packets.ErrPacketIdentifierInUse,
		packets.ErrPacketIdentifierNotFound, packets.ErrQuotaExceeded, packets.ErrPayloadFormatInvalid,
		packets.ErrSharedSubscriptionsNotSupported, packets.ErrSubscriptionIdentifiersNotSupported,
		packets.ErrWildcardSubscriptionsNotSupported, packets.ErrRetainNotSupported,
		packets.ErrQosNotSupported, packets.ErrPacketTooLarge, packets.ErrTopicAliasInvalid,
		packets.ErrReceiveMaximum, packets.ErrMessageRateTooHigh,
	} {
		m[c.Code] = c
	}
	return m
}()
