package testbroker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// publishPacket encodes a QoS 0 PUBLISH of payload to topic "t".
func publishPacket(payload string) []byte {
	body := append([]byte{0, 1, 't'}, payload...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

var pingreq = []byte{0xc0, 0}

// out is a packet the far end of a pipe received, and when (since the test began).
type out struct {
	at  time.Duration
	pkt string // the payload of a PUBLISH, "ping" for a PINGREQ
}

// pipeRig relays over in-memory pipes, inside a synctest bubble, so its clock is exact.
type pipeRig struct {
	p      *Proxy
	client net.Conn // the client's end: the test writes here
	got    chan out // what the broker's end read
	start  time.Time
}

func newPipeRig(t *testing.T) *pipeRig {
	r := &pipeRig{p: newProxy(""), got: make(chan out, 100), start: time.Now()}
	client, proxyClient := net.Pipe()
	proxyBroker, brokerEnd := net.Pipe()
	r.client = client
	r.p.wg.Go(func() { r.p.relay(proxyClient, proxyBroker) })
	r.p.wg.Go(func() {
		defer close(r.got)
		br := bufio.NewReader(brokerEnd)
		for {
			pkt, err := readPacket(br, MaxPacketSize)
			if err != nil {
				return
			}
			name := "ping"
			if pkt[0]>>4 == publishType {
				name = string(pkt[5:])
			}
			r.got <- out{time.Since(r.start), name}
		}
	})
	t.Cleanup(func() {
		client.Close()
		brokerEnd.Close()
		r.p.Close()
	})
	return r
}

func (r *pipeRig) send(t *testing.T, pkt []byte) {
	t.Helper()
	if _, err := r.client.Write(pkt); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expect reads what arrived, in order, and compares it with want.
func (r *pipeRig) expect(t *testing.T, want ...out) {
	t.Helper()
	synctest.Wait()
	var got []out
	for len(r.got) > 0 {
		got = append(got, <-r.got)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

const ms = time.Millisecond

// TestProxyTiming checks, on a fake clock, when packets leave: the delay, its ordering
// when the delay shrinks, a swap and a swap that times out, and a pause.
func TestProxyTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newPipeRig(t)
		r.p.SetRules(Upstream, Rules{Delay: 100 * ms})
		r.send(t, publishPacket("a"))
		time.Sleep(10 * ms)
		r.send(t, pingreq) // every packet type is delayed
		time.Sleep(10 * ms)
		r.p.SetRules(Upstream, Rules{})
		r.send(t, publishPacket("b")) // no delay of its own, but not before "a" and the ping
		time.Sleep(200 * ms)
		r.expect(t, out{100 * ms, "a"}, out{110 * ms, "ping"}, out{110 * ms, "b"})

		r.p.SetRules(Upstream, Rules{SwapEvery: 2, SwapWait: 50 * ms})
		r.send(t, publishPacket("1"))
		r.send(t, publishPacket("2")) // held: nothing follows within 50 ms
		time.Sleep(100 * ms)
		r.send(t, publishPacket("3"))
		r.send(t, publishPacket("4")) // held
		time.Sleep(10 * ms)
		r.send(t, pingreq)            // passes the held packet
		r.send(t, publishPacket("5")) // "4" follows it
		time.Sleep(100 * ms)
		r.expect(t, out{220 * ms, "1"}, out{270 * ms, "2"}, out{320 * ms, "3"},
			out{330 * ms, "ping"}, out{330 * ms, "5"}, out{330 * ms, "4"})

		r.p.SetRules(Upstream, Rules{})
		r.p.Pause(Upstream)
		r.send(t, publishPacket("paused")) // the reader was already reading: it is held
		time.Sleep(time.Second)
		r.expect(t)
		r.p.Resume(Upstream)
		r.expect(t, out{1430 * ms, "paused"})

		// A swap under a delay: "8" is queued before "7"'s wait ends but due after it.
		r.p.SetRules(Upstream, Rules{Delay: 100 * ms, SwapEvery: 2, SwapWait: 50 * ms})
		r.send(t, publishPacket("6"))
		r.send(t, publishPacket("7")) // held
		time.Sleep(80 * ms)
		r.send(t, publishPacket("8"))
		time.Sleep(200 * ms)
		r.expect(t, out{1530 * ms, "6"}, out{1580 * ms, "7"}, out{1610 * ms, "8"})

		want := Stats{Seen: 11, Forwarded: 11, Swapped: 1, SwapTimeouts: 2}
		if got := r.p.Stats(Upstream); got != want {
			t.Errorf("Stats = %+v\nwant %+v", got, want)
		}
	})
}

// TestProxyCutCountsLost checks that packets queued when the pair is cut are counted lost.
func TestProxyCutCountsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newPipeRig(t)
		r.p.SetRules(Upstream, Rules{Delay: 100 * ms, DuplicateEvery: 2})
		for _, s := range []string{"1", "2", "3"} {
			r.send(t, publishPacket(s))
		}
		r.send(t, pingreq)
		synctest.Wait()
		r.p.CutAll()
		r.expect(t)
		if _, err := r.client.Write(pingreq); err == nil {
			t.Error("the client's connection is still open after CutAll")
		}
		synctest.Wait()
		s := r.p.Stats(Upstream)
		want := Stats{Seen: 3, Duplicated: 1, Lost: 4}
		if s != want {
			t.Errorf("Stats = %+v\nwant %+v", s, want)
		}
		if s.Seen-s.Dropped+s.Duplicated != s.Forwarded+s.Lost {
			t.Errorf("copies do not add up: %+v", s)
		}
	})
}

// brokerRig is the embedded broker, a proxy to it, a publisher and a subscriber on topic
// "proxy/test", one of them through the proxy (the other connects directly).
type brokerRig struct {
	p    *Proxy
	dir  Direction // the direction the messages take through the proxy
	pub  paho.Client
	got  chan arrival
	sent uint64 // messages published
}

type arrival struct {
	payload string
	at      time.Time
}

func newBrokerRig(t *testing.T, dir Direction) *brokerRig {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r := &brokerRig{p: StartProxy(t, b.Addr()), dir: dir, got: make(chan arrival, 1000)}
	pubURL, subURL := r.p.URL(), b.URL()
	if dir == Downstream {
		pubURL, subURL = subURL, pubURL
	}
	r.pub = mustDial(t, clientOptions(pubURL, "pub"))
	sub := mustDial(t, clientOptions(subURL, "sub"))
	done(t, sub.Subscribe("proxy/test", 0, func(_ paho.Client, m paho.Message) {
		r.got <- arrival{string(m.Payload()), time.Now()}
	}), "subscribe")
	// mochi handles a client's packets in order: once UNSUBACK is back, SUBSCRIBE is done.
	done(t, sub.Unsubscribe("proxy/barrier"), "unsubscribe")
	return r
}

func (r *brokerRig) publish(t *testing.T, payload string) {
	t.Helper()
	done(t, r.pub.Publish("proxy/test", 0, false, payload), "publish "+payload)
	r.sent++
}

// collect waits until the proxy has read every message published (paho reports a QoS 0
// publish done before writing it), clears the rules, publishes "end" and returns the
// payloads that arrived before it. The messages take one path in order, so all earlier
// ones have arrived by then.
func (r *brokerRig) collect(t *testing.T) []arrival {
	t.Helper()
	eventually(t, "the proxy reads every message", func() bool { return r.p.Stats(r.dir).Seen == r.sent })
	r.p.SetRules(r.dir, Rules{})
	r.publish(t, "end")
	var got []arrival
	for {
		select {
		case a := <-r.got:
			if a.payload == "end" {
				return got
			}
			got = append(got, a)
		case <-time.After(5 * time.Second):
			t.Fatalf("no end marker within 5s; got %v", got)
		}
	}
}

func payloads(as []arrival) string {
	var s []string
	for _, a := range as {
		s = append(s, a.payload)
	}
	return strings.Join(s, " ")
}

// eventually fails the test unless cond becomes true within 5 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
	}
}

func TestProxyFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dir   Direction
		rules Rules
		n     int
		want  string
		stats Stats // Seen and Forwarded are computed
	}{
		{"none", Upstream, Rules{}, 5, "1 2 3 4 5", Stats{}},
		{"drop", Upstream, Rules{DropEvery: 4}, 12, "1 2 3 5 6 7 9 10 11", Stats{Dropped: 3}},
		{"drop down", Downstream, Rules{DropEvery: 1}, 3, "", Stats{Dropped: 3}},
		{"duplicate", Upstream, Rules{DuplicateEvery: 3}, 7, "1 2 3 3 4 5 6 6 7", Stats{Duplicated: 2}},
		{"duplicate down", Downstream, Rules{DuplicateEvery: 3}, 7, "1 2 3 3 4 5 6 6 7", Stats{Duplicated: 2}},
		{"swap", Upstream, Rules{SwapEvery: 3}, 10, "1 2 4 3 5 7 6 8 10 9", Stats{Swapped: 3}},
		{"swap down", Downstream, Rules{SwapEvery: 3}, 10, "1 2 4 3 5 7 6 8 10 9", Stats{Swapped: 3}},
		{"drop before duplicate", Upstream, Rules{DropEvery: 2, DuplicateEvery: 3}, 6, "1 3 3 5", Stats{Dropped: 3, Duplicated: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newBrokerRig(t, tc.dir)
			r.p.SetRules(tc.dir, tc.rules)
			for i := 1; i <= tc.n; i++ {
				r.publish(t, strconv.Itoa(i))
			}
			if got := payloads(r.collect(t)); got != tc.want {
				t.Errorf("arrived %q, want %q", got, tc.want)
			}
			want := tc.stats
			want.Accepted = 1
			want.Seen = uint64(tc.n) + 1 // and "end"
			want.Forwarded = want.Seen - want.Dropped + want.Duplicated
			eventually(t, "stats", func() bool { return r.p.Stats(tc.dir) == want })
		})
	}
}

func TestProxyDelay(t *testing.T) {
	const d, n = 100 * ms, 10
	r := newBrokerRig(t, Upstream)
	r.p.SetRules(Upstream, Rules{Delay: d})
	sent := make([]time.Time, n)
	for i := range n {
		sent[i] = time.Now()
		r.publish(t, strconv.Itoa(i+1))
	}
	got := r.collect(t)
	if p := payloads(got); p != "1 2 3 4 5 6 7 8 9 10" {
		t.Fatalf("arrived %q", p)
	}
	for i, a := range got {
		if transit := a.at.Sub(sent[i]); transit < d || transit > d+2*time.Second {
			t.Errorf("message %d took %v, want %v to %v", i+1, transit, d, d+2*time.Second)
		}
	}
	// The delays overlap rather than add up: ten messages sent at once take ~d, not 10·d.
	if total := got[n-1].at.Sub(sent[0]); total > 5*d {
		t.Errorf("%d messages took %v in all, want about %v", n, total, d)
	}
}

func TestProxyPause(t *testing.T) {
	r := newBrokerRig(t, Upstream)
	r.p.Pause(Upstream)
	r.p.Pause(Upstream) // pausing twice is harmless
	for i := 1; i <= 5; i++ {
		r.publish(t, strconv.Itoa(i))
	}
	time.Sleep(200 * ms)
	if len(r.got) != 0 || r.p.Stats(Upstream).Forwarded != 0 {
		t.Fatalf("%d messages arrived while paused (stats %+v)", len(r.got), r.p.Stats(Upstream))
	}
	r.p.Resume(Upstream)
	r.p.Resume(Upstream)
	if got := payloads(r.collect(t)); got != "1 2 3 4 5" {
		t.Errorf("after Resume arrived %q", got)
	}
}

func TestProxyCutAllReconnects(t *testing.T) {
	r := newBrokerRig(t, Downstream) // the subscriber rides the proxy
	lost, connected := make(chan error, 10), make(chan bool, 10)
	opts := clientOptions(r.p.URL(), "rider").SetAutoReconnect(true).
		SetMaxReconnectInterval(200 * ms).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }).
		SetOnConnectHandler(func(paho.Client) { connected <- true })
	c := mustDial(t, opts)
	<-connected
	before := r.p.Stats(Upstream).Accepted
	r.p.CutAll()
	select {
	case err := <-lost:
		t.Logf("connection lost: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the connection-lost handler did not fire within 5s of CutAll")
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect within 10s of CutAll")
	}
	if got := r.p.Stats(Upstream).Accepted; got != before+1 {
		t.Errorf("Accepted went from %d to %d, want one more", before, got)
	}
	roundTrip(t, c) // the new connection carries traffic
}

func TestProxyMalformedClosesPair(t *testing.T) {
	r := newBrokerRig(t, Upstream)
	for i, garbage := range [][]byte{
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, // remaining length of 5 bytes
		{0x00, 0x00},                         // reserved packet type
		{0x30, 0xff, 0xff, 0xff, 0x7f},       // 256 MiB, over MaxPacketSize
	} {
		c, err := net.Dial("tcp", r.p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(garbage); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("garbage % x: read %d bytes, %v; want the connection closed", garbage, n, err)
		}
		eventually(t, "Malformed count", func() bool { return r.p.Stats(Upstream).Malformed == uint64(i+1) })
	}
	r.publish(t, "still up")
	if got := payloads(r.collect(t)); got != "still up" {
		t.Errorf("after the garbage arrived %q", got)
	}
}

func TestProxyClose(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var p *Proxy
	t.Run("start", func(t *testing.T) { p = StartProxy(t, b.Addr()) }) // Cleanup closes it
	p.Close()                                                          // again
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("the proxy still accepts after Close")
	}

	// A broker that is not there: the client's connection is closed.
	p = StartProxy(t, "127.0.0.1:1")
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read from a proxy without upstream: %v, want EOF", err)
	}
}

func TestReadPacket(t *testing.T) {
	long := func(n int) string { return string(bytes.Repeat([]byte{'x'}, n)) }
	for _, tc := range []struct {
		in      string
		n       int   // bytes of the packet read, if no error
		wantErr error // errors.Is
	}{
		{"\xc0\x00", 2, nil},
		{"\xc0\x00\xd0\x00", 2, nil},               // the first of two
		{"\x30\x7f" + long(127), 129, nil},         // longest 1-byte length
		{"\x30\x80\x01" + long(128), 131, nil},     // shortest 2-byte length
		{"\x30\xff\x7f" + long(16383), 16386, nil}, // longest 2-byte length
		{"\x30\x80\x80\x01" + long(16384), 16388, nil},
		{"\x30\xfc\xff\x3f" + long(1<<20-4), 1 << 20, nil}, // exactly MaxPacketSize
		{"\x30\xfd\xff\x3f" + long(1<<20-3), 0, errMalformed},
		{"\x30\xff\xff\xff\x7f", 0, errMalformed}, // 256 MiB - 1, not allocated
		{"\x30\x80\x80\x80\x80\x01", 0, errMalformed},
		{"\x00\x00", 0, errMalformed},
		{"", 0, io.EOF},
		{"\x30", 0, io.ErrUnexpectedEOF},
		{"\x30\x80", 0, io.ErrUnexpectedEOF},
		{"\x30\x05abc", 0, io.ErrUnexpectedEOF},
	} {
		pkt, err := readPacket(bufio.NewReader(strings.NewReader(tc.in)), MaxPacketSize)
		name := fmt.Sprintf("% x", tc.in[:min(len(tc.in), 6)])
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err %v, want %v", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(pkt) != tc.in[:tc.n] {
			t.Errorf("%s: got %d bytes, %v; want the first %d", name, len(pkt), err, tc.n)
		}
	}
}

// FuzzReadPacket checks that readPacket never panics, never returns more than it was
// given or more than the bound, and returns packets that are a prefix of the stream.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0, 1, 't'})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0xc0, 0x00, 0xd0, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		rest := in
		for {
			pkt, err := readPacket(r, 64)
			if err != nil {
				return
			}
			if len(pkt) > 64 || len(pkt) < 2 || !bytes.HasPrefix(rest, pkt) {
				t.Fatalf("packet % x is not a bounded prefix of % x", pkt, rest)
			}
			rest = rest[len(pkt):]
		}
	})
}
