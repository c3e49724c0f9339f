package lean

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim"
)

// discardConn is a net.Conn that takes every write and has nothing to read.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
func (discardConn) Close() error                { return nil }

// counting is a Receiver that counts deliveries.
type counting struct{ n int }

func (c *counting) Deliver(sim.Message) { c.n++ }

// readAll runs what a connection's reader does over the bytes a broker sent: decode and
// handle each packet until one fails. It returns the error that ended it.
func readAll(t testing.TB, proto byte, stream []byte) (int, error) {
	c := &Conn{
		cfg:     Config{Protocol: proto}.withDefaults(),
		slots:   make(chan struct{}, 8),
		flights: map[uint16]*flight{},
		subs:    map[string]byte{},
		subacks: map[uint16]chan []byte{},
		nextID:  1,
	}
	c.cfg.MaxPacket = 1 << 16
	c.life, c.end = context.WithCancel(context.Background())
	defer c.end()
	rcv := &counting{}
	c.dispatch.Add("#", rcv)
	w := newWire(c, discardConn{}, reader{src: bytes.NewReader(stream), proto: proto})
	for {
		pk, err := w.rd.next()
		if err == nil {
			err = c.handle(w, &pk)
		}
		if err != nil {
			return rcv.n, err
		}
	}
}

// encoded is the bytes of packets as a broker would send them.
func encoded(t testing.TB, pks ...packets.Packet) []byte {
	var buf bytes.Buffer
	for _, pk := range pks {
		var err error
		switch pk.FixedHeader.Type {
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Puback:
			err = pk.PubackEncode(&buf)
		case packets.Pubrel:
			err = pk.PubrelEncode(&buf)
		case packets.Suback:
			err = pk.SubackEncode(&buf)
		case packets.Pingresp:
			err = pk.PingrespEncode(&buf)
		case packets.Connack:
			err = pk.ConnackEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func publish(qos byte, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: "a/b", PacketID: id, Payload: []byte("x")}
}

func TestReaderHandlesWhatABrokerSends(t *testing.T) {
	stream := encoded(t,
		publish(0, 0), publish(1, 7), publish(2, 8),
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 8},
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 99}, // unknown: ignored
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}},
	)
	n, err := readAll(t, MQTT311, stream)
	if n != 3 || !errors.Is(err, io.EOF) {
		t.Errorf("%d delivered, ended with %v; want 3 and EOF", n, err)
	}
	// A QoS 2 message sent again (DUP) before PUBREL is acknowledged, not delivered again.
	again := publish(2, 5)
	dup := again
	dup.FixedHeader.Dup = true
	if n, _ := readAll(t, MQTT311, encoded(t, again, dup)); n != 1 {
		t.Errorf("QoS 2 sent again: delivered %d times, want once", n)
	}
	for name, garbage := range map[string][]byte{
		"reserved type":        {0x00, 0x00},
		"PUBLISH with QoS 3":   {0x36, 0x02, 0x00, 0x00},
		"five-byte length":     {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
		"topic past the end":   {0x30, 0x03, 0xFF, 0xFF, 0x61},
		"too large":            {0x30, 0xFF, 0xFF, 0x7F},
		"SUBSCRIBE from above": {0x82, 0x02, 0x00, 0x01},
		"CONNACK again":        encoded(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}),
		"wildcard topic":       {0x30, 0x05, 0x00, 0x03, 'a', '/', '#'},
	} {
		if _, err := readAll(t, MQTT311, garbage); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ended with %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzReader feeds arbitrary bytes to a connection's reader, as both protocol versions:
// whatever a broker sends, it never panics; it delivers or it ends with an error.
func FuzzReader(f *testing.F) {
	f.Add(encoded(f, publish(0, 0), publish(1, 3), publish(2, 4)))
	f.Add(encoded(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: 1, ReasonCodes: []byte{1}}))
	f.Add([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Add([]byte{0x40, 0x02, 0x00, 0x01, 0xD0, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, proto := range []byte{MQTT311, MQTT5} {
			if _, err := readAll(t, proto, b); err == nil {
				t.Fatal("the reader ended without an error")
			}
		}
	})
}
