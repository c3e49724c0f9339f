package lean

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// brokers5 are the MQTT 5 brokers every test here runs against: the embedded one and a
// real mosquitto, each started on first use by the subtest.
var brokers5 = []struct {
	name    string
	aliases bool // the broker's CONNACK gives a Topic Alias Maximum (mochi's says none)
	start   func(t *testing.T) string
}{
	{"mochi", false, func(t *testing.T) string {
		b := embedded(t)
		t.Cleanup(func() { b.Close() })
		return b.URL()
	}},
	{"mosquitto", true, func(t *testing.T) string {
		return testbroker.StartMosquitto(t, testbroker.Config{}).URL()
	}},
}

// rawClient is a bare MQTT 5 client for the tests: it shows the packets a broker sends as
// they are, properties included, which a Conn turns into messages without them.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	rd reader
}

// rawConnect connects with client id and clean start, and returns the client and the
// CONNACK.
func rawConnect(t *testing.T, url, id string, clean bool) (*rawClient, packets.Packet) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := &rawClient{t: t, nc: nc, rd: reader{src: &bufReader{src: nc}, proto: MQTT5, max: 1 << 20}}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: MQTT5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: clean, Keepalive: 30}}
	if !clean {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	r.send(&pk)
	ack := r.next(5 * time.Second)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("raw connect: %s, reason 0x%02x", packets.PacketNames[ack.FixedHeader.Type], ack.ReasonCode)
	}
	return r, ack
}

func (r *rawClient) send(pk *packets.Packet) {
	r.t.Helper()
	var buf bytes.Buffer
	if err := encodePacket(pk, &buf); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(buf.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// subscribe subscribes to filter at QoS 1 and returns the packets that came before the
// SUBACK (retained or queued messages), acknowledged.
func (r *rawClient) subscribe(filter string) []packets.Packet {
	r.t.Helper()
	r.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1, ProtocolVersion: MQTT5,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	var before []packets.Packet
	for {
		pk := r.next(5 * time.Second)
		if pk.FixedHeader.Type == packets.Suback {
			if len(pk.ReasonCodes) != 1 || pk.ReasonCodes[0] > 2 {
				r.t.Fatalf("raw subscribe %s: %v", filter, pk.ReasonCodes)
			}
			return before
		}
		before = append(before, pk)
	}
}

// next reads the next packet, acknowledging a QoS 1 PUBLISH; a read error or d passing
// fails the test.
func (r *rawClient) next(d time.Duration) packets.Packet {
	r.t.Helper()
	pk, err := r.try(d)
	if err != nil {
		r.t.Fatalf("raw client: %v", err)
	}
	return pk
}

// try reads the next packet within d, acknowledging a QoS 1 PUBLISH.
func (r *rawClient) try(d time.Duration) (packets.Packet, error) {
	if err := r.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return packets.Packet{}, err
	}
	pk, err := r.rd.next()
	if err == nil && pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 1 {
		r.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ProtocolVersion: MQTT5})
	}
	return pk, err
}

// quiet reports that nothing comes within d.
func (r *rawClient) quiet(d time.Duration) {
	r.t.Helper()
	pk, err := r.try(d)
	var ne net.Error
	if err == nil {
		r.t.Fatalf("want nothing, got %s on %q", packets.PacketNames[pk.FixedHeader.Type], pk.TopicName)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		r.t.Fatalf("want nothing, got %v", err)
	}
}

// TestUserPropertiesReachASubscriber publishes with user properties at QoS 0 and 1 and
// checks an MQTT 5 subscriber gets them, in order, on both brokers.
func TestUserPropertiesReachASubscriber(t *testing.T) {
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			sub, _ := rawConnect(t, url, "props-sub", true)
			sub.subscribe("up/#")
			c := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "props-pub")
			defer c.Close()
			props := &Props{User: []packets.UserProperty{{Key: "site", Val: "home-3"}, {Key: "dev", Val: "lamp-1"}}}
			for qos := range byte(2) {
				if err := c.PublishWith(context.Background(), "up/lamp", []byte("on"), qos, false, props); err != nil {
					t.Fatal(err)
				}
				pk := sub.next(5 * time.Second)
				if pk.TopicName != "up/lamp" || fmt.Sprint(pk.Properties.User) != fmt.Sprint(props.User) {
					t.Errorf("QoS %d: %q with user properties %v, want %v", qos, pk.TopicName, pk.Properties.User, props.User)
				}
			}
		})
	}
}

// TestRetainedMessageExpires retains two messages, one with a 1 s expiry: a subscriber
// coming 2.5 s later gets only the other, on both brokers.
func TestRetainedMessageExpires(t *testing.T) {
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			c := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "expiry-pub")
			defer c.Close()
			ctx := context.Background()
			if err := c.PublishWith(ctx, "exp/short", []byte("gone"), 1, true, &Props{MessageExpiry: time.Second}); err != nil {
				t.Fatal(err)
			}
			if err := c.PublishWith(ctx, "exp/kept", []byte("here"), 1, true, &Props{MessageExpiry: time.Hour}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond)
			sub, _ := rawConnect(t, url, "expiry-sub", true)
			got := sub.subscribe("exp/#")
			for len(got) < 1 {
				got = append(got, sub.next(5*time.Second))
			}
			if len(got) != 1 || got[0].TopicName != "exp/kept" {
				t.Fatalf("late subscriber got %d messages (first %q), want only exp/kept", len(got), got[0].TopicName)
			}
			if e := got[0].Properties.MessageExpiryInterval; e == 0 || e > 3600 {
				t.Errorf("retained message's expiry %d s, want what is left of 3600", e)
			}
			sub.quiet(500 * time.Millisecond)
		})
	}
}

// TestSessionExpiry closes a persistent MQTT 5 connection that subscribed: with a session
// expiry of an hour the broker queues what is published meanwhile and hands it over on
// the next connect; with 1 s, once that passed, the session is gone.
func TestSessionExpiry(t *testing.T) {
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			pub := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "se-pub")
			defer pub.Close()
			for _, tc := range []struct {
				expiry time.Duration
				away   time.Duration
				kept   bool
			}{{time.Hour, 0, true}, {time.Second, 2500 * time.Millisecond, false}} {
				id := fmt.Sprintf("se-%v", tc.expiry)
				c := dial(t, Config{Options: mqttconn.Options{Broker: url, Persistent: true}, Protocol: MQTT5, SessionExpiry: tc.expiry}, id)
				if _, err := c.Subscribe(context.Background(), "se/"+id, 1, newInbox()); err != nil {
					t.Fatal(err)
				}
				c.Close()
				for i := range 3 {
					if err := pub.Publish(context.Background(), "se/"+id, []byte{byte('0' + i)}, 1, false); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(tc.away)
				raw, ack := rawConnect(t, url, id, false)
				if ack.SessionPresent != tc.kept {
					t.Errorf("expiry %v, away %v: session present %v, want %v", tc.expiry, tc.away, ack.SessionPresent, tc.kept)
				}
				if !tc.kept {
					raw.quiet(500 * time.Millisecond)
					continue
				}
				// In any order: mochi-mqtt sends a resumed session's messages in no order.
				got := map[string]bool{}
				for range 3 {
					pk := raw.next(5 * time.Second)
					if pk.TopicName != "se/"+id {
						t.Errorf("queued message on %q, want se/%s", pk.TopicName, id)
					}
					got[string(pk.Payload)] = true
				}
				if len(got) != 3 {
					t.Errorf("queued messages %v, want 0, 1 and 2", got)
				}
			}
		})
	}
}

// countingConn counts the bytes written to a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// TestTopicAliasesShrinkTheWire publishes the same messages on a few long topics under
// MQTT 3.1.1 and MQTT 5: with the broker's topic aliases the MQTT 5 connection writes far
// fewer bytes, and a subscriber still gets every message on its topic, on both brokers.
// Twelve topics are more than mosquitto's 10 aliases: the last go out with their names.
// mochi-mqtt's CONNACK gives no Topic Alias Maximum, so there MQTT 5 saves nothing; but
// it sends the subscriber aliases of its own, which must resolve to the right topics.
func TestTopicAliasesShrinkTheWire(t *testing.T) {
	const topics, each = 12, 20
	topic := func(i int) string { return fmt.Sprintf("alias/%s/%02d", strings.Repeat("long-topic-level/", 4), i) }
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			sub := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "alias-sub")
			defer sub.Close()
			in := newInbox()
			if _, err := sub.Subscribe(context.Background(), "alias/#", 1, in); err != nil {
				t.Fatal(err)
			}
			written := map[byte]int64{}
			for _, proto := range []byte{MQTT311, MQTT5} {
				var n atomic.Int64
				dialer := &net.Dialer{}
				opts := mqttconn.Options{Broker: url, NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := dialer.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return countingConn{nc, &n}, nil
				}}
				c := dial(t, Config{Options: opts, Protocol: proto}, fmt.Sprintf("alias-pub-%d", proto))
				for k := range topics * each {
					if err := c.Publish(context.Background(), topic(k%topics), []byte("x"), byte(k%2), false); err != nil {
						t.Fatal(err)
					}
				}
				c.Close()
				written[proto] = n.Load()
			}
			msgs := in.wait(t, 2*topics*each, 10*time.Second)
			per := map[string]int{}
			for _, m := range msgs {
				per[m.Topic]++
			}
			for i := range topics {
				if per[topic(i)] != 2*each {
					t.Errorf("%s: %d messages, want %d", topic(i), per[topic(i)], 2*each)
				}
			}
			// With aliases, messages but the first on ten topics of 84 bytes send 3 bytes
			// instead: less than half the bytes in all. Without, MQTT 5 costs a byte a
			// packet more (the properties' length) and nothing less.
			five, three := written[MQTT5], written[MQTT311]
			if b.aliases && five*2 > three || !b.aliases && (five < three || five > three+int64(2*topics*each)) {
				t.Errorf("MQTT 5 wrote %d bytes, 3.1.1 %d (aliases given: %v)", five, three, b.aliases)
			}
			t.Logf("bytes written: 3.1.1 %d, MQTT 5 with aliases %d", written[MQTT311], written[MQTT5])
		})
	}
}

// TestBrokerTopicAliases feeds the reader what a broker sends with topic aliases: an alias
// set with its topic is resolved on the next messages; an alias beyond TopicAliasMax, or
// one never set, is a protocol error that ends the connection, never a panic.
func TestBrokerTopicAliases(t *testing.T) {
	aliased := func(topic string, alias uint16) packets.Packet {
		pk := publish(0, 0)
		pk.ProtocolVersion, pk.TopicName = MQTT5, topic
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = alias, true
		return pk
	}
	c := &Conn{cfg: Config{Protocol: MQTT5}.withDefaults(), flights: map[uint16]*flight{}, subacks: map[uint16]chan []byte{}}
	in := newInbox()
	c.dispatch.Add("#", in)
	w := newWire(c, discardConn{}, reader{src: bytes.NewReader(encoded(t,
		aliased("a/b", 1), aliased("", 1), aliased("c/d", TopicAliasMax), aliased("", TopicAliasMax), aliased("", 1),
		aliased("", 2), // never set
	)), proto: MQTT5})
	var err error
	for err == nil {
		var pk packets.Packet
		if pk, err = w.rd.next(); err == nil {
			err = c.handle(w, &pk)
		}
	}
	var got []string
	for _, m := range in.wait(t, 5, time.Second) {
		got = append(got, m.Topic)
	}
	if fmt.Sprint(got) != "[a/b a/b c/d c/d a/b]" || !errors.Is(err, ErrMalformed) {
		t.Errorf("topics %v, ended with %v; want [a/b a/b c/d c/d a/b] and ErrMalformed", got, err)
	}
	if _, err := readAll(t, MQTT5, encoded(t, aliased("x", TopicAliasMax+1))); !errors.Is(err, ErrMalformed) {
		t.Errorf("alias beyond the maximum: %v, want ErrMalformed", err)
	}
}

// TestSharedSubscriptionSplitsAcrossConnections puts two MQTT 5 connections in one share
// group, one with two devices in it: together they get every message once, each
// connection a part, and on the connection with two members each message goes to one.
func TestSharedSubscriptionSplitsAcrossConnections(t *testing.T) {
	const n = 200
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			var sinks [3]*inbox
			for i := range sinks {
				sinks[i] = newInbox()
			}
			c1 := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "share-1")
			defer c1.Close()
			c2 := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "share-2")
			defer c2.Close()
			for i, c := range []*Conn{c1, c2, c2} {
				if _, err := c.Subscribe(context.Background(), "$share/g/sh/#", 1, sinks[i]); err != nil {
					t.Fatal(err)
				}
			}
			pub := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "share-pub")
			defer pub.Close()
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if err := pub.Publish(context.Background(), "sh/t", fmt.Appendf(nil, "%d", i), 1, false); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			seen := map[string]int{}
			deadline := time.Now().Add(10 * time.Second)
			total := 0
			for total < n && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				total = 0
				for _, s := range sinks {
					s.mu.Lock()
					total += len(s.msgs)
					s.mu.Unlock()
				}
			}
			time.Sleep(200 * time.Millisecond) // anything more would be a duplicate
			var counts [3]int
			for i, s := range sinks {
				s.mu.Lock()
				for _, m := range s.msgs {
					seen[string(m.Payload)]++
				}
				counts[i] = len(s.msgs)
				s.mu.Unlock()
			}
			if len(seen) != n || counts[0]+counts[1]+counts[2] != n {
				t.Fatalf("%d distinct of %d, %v in all: want each once", len(seen), n, counts)
			}
			if counts[0] == 0 || counts[1]+counts[2] == 0 || counts[1] == 0 || counts[2] == 0 {
				t.Errorf("split %v: want every connection and member to get a part", counts)
			}
			t.Logf("split over connection 1 and connection 2's two members: %v", counts)
		})
	}
}

// TestReasonCodesHaveNames checks refusals carry the reason's name and are ErrRefused.
func TestReasonCodesHaveNames(t *testing.T) {
	for code, want := range map[byte]string{0x87: "not authorized", 0x97: "quota exceeded", 0x80: "unspecified error", 0xFE: "unknown reason"} {
		err := fmt.Errorf("publish: %w", &ReasonError{What: "publish", Code: code})
		if !strings.Contains(err.Error(), want) || !errors.Is(err, ErrRefused) {
			t.Errorf("0x%02x: %v, want %q and ErrRefused", code, err, want)
		}
	}
}

// TestRefusalsNameTheirReason has the embedded broker refuse a student's QoS 1 publish
// to a topic its ACL keeps from students, and a subscription to an invalid filter: the
// errors name the reason and are ErrRefused; the connection stays up.
func TestRefusalsNameTheirReason(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0", Users: map[string]broker.User{"ann": {Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := dial(t, Config{Options: mqttconn.Options{Broker: b.URL(), Username: "ann", Password: "pw"}, Protocol: MQTT5}, "refused")
	defer c.Close()
	err = c.Publish(context.Background(), "home/1/lamp/1", []byte("x"), 1, false)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not authorized (reason code 0x87)") {
		t.Errorf("publish outside the ACL: %v, want not authorized (0x87)", err)
	}
	if err := c.Publish(context.Background(), "students/ann/x", []byte("x"), 1, false); err != nil {
		t.Errorf("publish inside the ACL: %v", err)
	}
	_, err = c.Subscribe(context.Background(), "a/#/b", 1, newInbox())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "topic filter invalid") {
		t.Errorf("invalid filter: %v, want topic filter invalid", err)
	}
	if !c.Up() {
		t.Error("the refusals dropped the connection")
	}
}

// TestOverlappingSubscriptionsGetTheirOwnCopies has one device's plain subscription and
// another's shared one overlap on one MQTT 5 connection: by the subscription identifiers
// each copy the broker sends goes to the subscription it is for, so each device gets every
// message once. (mosquitto sends a copy per subscription; under 3.1.1 both devices would
// get both.)
func TestOverlappingSubscriptionsGetTheirOwnCopies(t *testing.T) {
	const n = 100
	for _, b := range brokers5 {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			c := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "overlap")
			defer c.Close()
			plain, shared := newInbox(), newInbox()
			if _, err := c.Subscribe(context.Background(), "ov/#", 1, plain); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Subscribe(context.Background(), "$share/g/ov/#", 1, shared); err != nil {
				t.Fatal(err)
			}
			pub := dial(t, Config{Options: mqttconn.Options{Broker: url}, Protocol: MQTT5}, "overlap-pub")
			defer pub.Close()
			for i := range n {
				if err := pub.Publish(context.Background(), "ov/t", fmt.Appendf(nil, "%d", i), 1, false); err != nil {
					t.Fatal(err)
				}
			}
			plain.wait(t, n, 10*time.Second)
			shared.wait(t, n, 10*time.Second)
			time.Sleep(200 * time.Millisecond) // anything more would be a copy for the other
			for name, in := range map[string]*inbox{"plain": plain, "shared": shared} {
				in.mu.Lock()
				got := len(in.msgs)
				in.mu.Unlock()
				if got != n {
					t.Errorf("the %s subscriber got %d messages, want each of %d once", name, got, n)
				}
			}
		})
	}
}
