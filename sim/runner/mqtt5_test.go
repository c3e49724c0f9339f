package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// spy5 is a bare MQTT 5 subscriber that keeps the user properties of what it receives.
type spy5 struct {
	nc  net.Conn
	got chan packets.Packet
}

// newSpy5 connects to url, subscribes to filter at QoS 0 and collects what arrives.
func newSpy5(t *testing.T, url, filter string) *spy5 {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := &spy5{nc: nc, got: make(chan packets.Packet, 1024)}
	var buf bytes.Buffer
	conn := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "spy5", Clean: true, Keepalive: 60}}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1, ProtocolVersion: 5,
		Filters: packets.Subscriptions{{Filter: filter}}}
	if conn.ConnectEncode(&buf) != nil || sub.SubscribeEncode(&buf) != nil {
		t.Fatal("encode")
	}
	if _, err := nc.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan struct{})
	go s.read(subscribed)
	select {
	case <-subscribed:
	case <-time.After(5 * time.Second):
		t.Fatal("the spy's SUBACK did not come")
	}
	return s
}

// read decodes what the broker sends until the connection closes; it closes subscribed
// at the SUBACK.
func (s *spy5) read(subscribed chan struct{}) {
	defer close(s.got)
	rd := bufio.NewReader(s.nc)
	for {
		b, err := rd.ReadByte()
		if err != nil {
			return
		}
		pk := packets.Packet{ProtocolVersion: 5}
		if pk.FixedHeader.Decode(b) != nil {
			return
		}
		n, _, err := packets.DecodeLength(rd)
		if err != nil {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(rd, body); err != nil {
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Suback:
			close(subscribed)
		case packets.Publish:
			if pk.PublishDecode(body) == nil {
				s.got <- pk
			}
		}
	}
}

// TestUserPropertiesPerDevice runs two streamers whose group has user properties and a
// message expiry over MQTT 5: every message an MQTT 5 subscriber sees carries its own
// device's properties, expanded, on both brokers.
func TestUserPropertiesPerDevice(t *testing.T) {
	for _, br := range []string{"mochi", "mosquitto"} {
		t.Run(br, func(t *testing.T) {
			var url string
			if br == "mochi" {
				b := embedded(t)
				defer b.Close()
				url = b.URL()
			} else {
				url = testbroker.StartMosquitto(t, testbroker.Config{}).URL()
			}
			spy := newSpy5(t, url, "stream/#")
			defer spy.nc.Close()
			s := streamScenario(1, 100, 20, false)
			s.Homes = 2
			s.Connections = scenario.Connections{Mode: scenario.PerHome, Protocol: scenario.Protocol5}
			st := &s.Groups[1]
			st.Topic = "stream/{home}/{id}"
			st.UserProperties = []scenario.UserProperty{{Key: "site", Value: "h{home}"}, {Key: "dev", Value: "{id}"}, {Key: "kind", Value: "{kind}"}}
			st.MessageExpiry = 30 * time.Second
			if _, err, _ := runMeasured(t, s, url); err != nil {
				t.Fatal(err)
			}
			spy.nc.Close()
			n := 0
			for pk := range spy.got {
				n++
				home := strings.Split(pk.TopicName, "/")[1]
				want := "[{site h" + home + "} {dev streamer-1} {kind streamer}]"
				if got := fmtProps(pk.Properties.User); got != want || pk.Properties.MessageExpiryInterval == 0 {
					t.Fatalf("%s: properties %s, expiry %d; want %s and an expiry", pk.TopicName, got, pk.Properties.MessageExpiryInterval, want)
				}
			}
			if n != 40 {
				t.Errorf("the spy saw %d messages, want 40", n)
			}
		})
	}
}

func fmtProps(ps []packets.UserProperty) string {
	var b strings.Builder
	b.WriteString("[")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("{" + p.Key + " " + p.Val + "}")
	}
	return b.String() + "]"
}

// TestMQTT5SettingsNeedMQTT5 refuses a run that speaks 3.1.1 a scenario with MQTT 5
// settings, naming them.
func TestMQTT5SettingsNeedMQTT5(t *testing.T) {
	s := streamScenario(1, 10, 1, false)
	s.Groups[1].UserProperties = []scenario.UserProperty{{Key: "a", Value: "b"}}
	s.Groups[1].Line = 7
	cfg := Config{Scenario: s, Client: scenario.ClientLean, Protocol: scenario.Protocol311}
	err := cfg.checkTransport()
	if !errors.Is(err, ErrNeedsMQTT5) || !strings.Contains(err.Error(), "test.yaml:7: streamer user_properties") {
		t.Errorf("user properties over 3.1.1: %v, want ErrNeedsMQTT5 naming test.yaml:7", err)
	}
	cfg.Protocol = scenario.Protocol5
	if err := cfg.checkTransport(); err != nil {
		t.Errorf("over MQTT 5: %v", err)
	}
}

// TestRefusedPublishesAreCountedFailures has the embedded broker refuse, with reason code
// 0x87 (not authorized), every QoS 1 publish of a student's streamer over MQTT 5: each is
// a counted publish failure and its metric, and none is taken for a loss.
func TestRefusedPublishesAreCountedFailures(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0", Users: map[string]broker.User{"ann": {Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := streamScenario(1, 100, 10, false)
	s.Connections = scenario.Connections{Mode: scenario.PerHome, Protocol: scenario.Protocol5}
	s.Groups[1].Topic = "home/1/streamer/{id}" // not a student's to write
	s.Groups[0].Params.(*listenParams).Filter = "home/#"
	m := metrics.New(prometheus.NewRegistry(), s.Name)
	sum, err := Run(context.Background(), Config{Scenario: s, Kinds: measureKinds, Metrics: m, Grace: time.Second, AllowGeneratorLimit: true,
		Conn: mqttconn.Options{Broker: b.URL(), Username: "ann", Password: "pw", ConnectTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var failed int64
	for _, k := range sum.Kinds {
		if k.Kind == "streamer" {
			failed = k.Failed
		}
	}
	metric := testutil.ToFloat64(m.For("streamer").PublishFailures[1])
	var lost, delivered uint64
	for _, k := range sum.Measured.ByKind {
		lost, delivered = lost+k.Totals.Lost, delivered+k.Totals.Delivered
	}
	if failed != 10 || metric != 10 || lost != 0 || delivered != 0 {
		t.Errorf("streamer failed %d (metric %v), %d lost, %d delivered: want 10 failures, nothing lost or delivered", failed, metric, lost, delivered)
	}
}
