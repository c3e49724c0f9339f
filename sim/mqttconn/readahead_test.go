package mqttconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/broker"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// countingConn counts the reads that reach the connection under it.
type countingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) { return testbroker.TCPPair(t) }

func TestReadAheadReadsABurstInTwoReads(t *testing.T) {
	client, server := tcpPair(t)
	defer client.Close()
	under := &countingConn{Conn: client}
	ra := newReadAhead(under)

	// A burst of publishes of several sizes, one of them bigger than the buffer, all on
	// the wire before the first is read.
	var wire bytes.Buffer
	var want []*packets.PublishPacket
	for i, size := range []int{0, 1, 60, 127, 128, 300, readAheadSize + 100, 64, 64, 64} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName = fmt.Sprintf("t/%d", i)
		p.Payload = bytes.Repeat([]byte{byte(i)}, size)
		if err := p.Write(&wire); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if _, err := server.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // all of it in the socket's buffer
	for i, w := range want {
		cp, err := packets.ReadPacket(ra)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		got, ok := cp.(*packets.PublishPacket)
		if !ok || got.TopicName != w.TopicName || !bytes.Equal(got.Payload, w.Payload) {
			t.Fatalf("packet %d: got %v, want topic %s with %d bytes", i, cp, w.TopicName, len(w.Payload))
		}
	}
	// paho alone reads each packet in at least three reads (type, length, rest): 30 here.
	if n := under.reads.Load(); n > 8 {
		t.Errorf("%d reads reached the socket for %d packets in one burst", n, len(want))
	}
	if ra.buf != nil {
		t.Error("the buffer is still held with everything read out")
	}

	// The peer closes: the reader sees EOF, however the bytes before it were buffered.
	server.Write([]byte{0xd0, 0x00}) // PINGRESP
	server.Close()
	if cp, err := packets.ReadPacket(ra); err != nil {
		t.Fatalf("the last packet before the close: %v", err)
	} else if _, ok := cp.(*packets.PingrespPacket); !ok {
		t.Fatalf("got %v, want PINGRESP", cp)
	}
	if _, err := packets.ReadPacket(ra); !errors.Is(err, io.EOF) {
		t.Errorf("after the close: %v, want EOF", err)
	}
}

// errAfterData returns its last data and an error from the same read, as io.Reader allows.
type errAfterData struct {
	net.Conn
	data []byte
	err  error
}

func (c *errAfterData) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	if len(c.data) > 0 {
		return n, nil
	}
	return n, c.err
}

func TestReadAheadKeepsAnErrorUntilTheDataIsRead(t *testing.T) {
	boom := errors.New("boom")
	ra := newReadAhead(&errAfterData{data: []byte("abcdef"), err: boom})
	var got []byte
	var err error
	p := make([]byte, 2)
	for err == nil {
		var n int
		n, err = ra.Read(p)
		got = append(got, p[:n]...)
	}
	if string(got) != "abcdef" || !errors.Is(err, boom) {
		t.Errorf("read %q then %v, want abcdef then boom", got, err)
	}
}

// TestMessagesThroughReadAhead runs a stream through a real connection: Dial reads plain
// TCP through readAhead, and every message must arrive whole and in order.
func TestMessagesThroughReadAhead(t *testing.T) {
	defer goleak.VerifyNone(t)
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	c, err := Dial(ctx, Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second}, "read-ahead")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 5000
	got := make(chan sim.Message, n)
	if _, err := c.Subscribe(ctx, "ra/#", 1, receiverFunc(func(m sim.Message) { got <- m })); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		payload := bytes.Repeat([]byte{byte(i)}, i%700)
		if err := c.Publish(ctx, fmt.Sprintf("ra/%d", i%7), payload, byte(i%2), false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case m := <-got:
			if m.Topic != fmt.Sprintf("ra/%d", i%7) || !bytes.Equal(m.Payload, bytes.Repeat([]byte{byte(i)}, i%700)) {
				t.Fatalf("message %d: topic %s, %d bytes", i, m.Topic, len(m.Payload))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d messages arrived", i, n)
		}
	}
}

type receiverFunc func(sim.Message)

func (f receiverFunc) Deliver(m sim.Message) { f(m) }
