package runner

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// The per-message path without the network: what fleetsim itself does for each message a
// load device publishes (BenchmarkPortPublish) and a sink receives (BenchmarkPortDeliver),
// metrics and accounting included. The end-to-end benchmarks (bench_mosquitto_test.go)
// put these figures next to paho's and the kernel's.

// nullConn completes every publish at once.
type nullConn struct{ n atomic.Int64 }

func (c *nullConn) Publish(context.Context, string, []byte, byte, bool) error {
	c.n.Add(1)
	return nil
}

func (c *nullConn) Subscribe(context.Context, string, byte, mqttconn.Receiver) (byte, error) {
	return 0, nil
}

// benchPort is a port as build makes it, on conn.
func benchPort(meas *measurement, kind string, conn connection, discard bool) *port {
	m := metrics.New(prometheus.NewRegistry(), "bench")
	eng := &engine{meas: meas, console: &console{}, flight: context.Background(), workers: newWorkers()}
	// never the limit here: its cost, not its waits
	p := newPort(eng, meas.kind(kind, m.For(kind), m), 1, kind+"-1", rate.NewLimiter(rate.Limit(1e9), 1e9), nil)
	p.conn, p.discard = conn, discard
	p.inbox = make(chan sim.Message, inboxSize)
	return p
}

func BenchmarkPortPublish(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run([]string{"qos0", "qos1"}[qos], func(b *testing.B) {
			p := benchPort(newMeasurement(), "load", &nullConn{}, false)
			payload := sim.Reserve(64)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.PublishAt(ctx, time.Now(), "bench/load-1", payload, qos, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPortDeliver(b *testing.B) {
	meas := newMeasurement()
	st := meas.newStream("bench/load-1")
	p := benchPort(meas, "sink", &nullConn{}, true)
	payload := sim.Reserve(64)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		st.last.Store(seq)
		measure.AppendHeader(payload[:0], measure.Header{ID: st.id, Seq: seq, Sent: time.Now().UnixNano()})
		p.Deliver(sim.Message{Topic: "bench/load-1", Payload: payload})
	}
	if got := p.km.tracker[0].Snapshot().Delivered; got != seq {
		b.Fatalf("%d delivered of %d", got, seq)
	}
}

// recordingConn keeps every payload it is given (the slice itself, as paho does) and fails
// the publishes it is told to.
type recordingConn struct {
	nullConn
	got  [][]byte
	fail bool
}

func (c *recordingConn) Publish(_ context.Context, _ string, payload []byte, _ byte, _ bool) error {
	c.got = append(c.got, payload)
	if c.fail {
		return errors.New("no answer")
	}
	return nil
}

func TestStampedPayloadsAreReusedOnlyOnceComplete(t *testing.T) {
	conn := &recordingConn{}
	p := benchPort(newMeasurement(), "load", conn, false)
	payload := sim.Reserve(40)
	ctx := context.Background()
	publish := func(qos byte, fail bool) []byte {
		t.Helper()
		conn.fail = fail
		if err := p.Publish(ctx, "t", payload, qos, false); (err != nil) != fail {
			t.Fatalf("publish: %v", err)
		}
		return conn.got[len(conn.got)-1]
	}
	same := func(a, b []byte) bool { return &a[0] == &b[0] }
	// Completed QoS 0 publishes hand their buffer on. The pool behind it may drop one now
	// and then (the race detector makes it drop a quarter on purpose), so reuse is asked of
	// one pair in twenty.
	reused := false
	prev := publish(0, false)
	for range 20 {
		next := publish(0, false)
		reused = reused || same(prev, next)
		prev = next
	}
	if !reused {
		t.Error("no completed publish's buffer was reused")
	}
	// A buffer the client may still hold is never handed on: a failed publish's, and at
	// QoS 1 and 2 any, since with a persistent session the client keeps a payload after the
	// publish's token completed.
	failed := publish(0, true)
	sentAfter := publish(0, false)
	if same(failed, sentAfter) {
		t.Error("the buffer of a failed publish was reused")
	}
	q1 := publish(1, false)
	if same(q1, publish(1, false)) || same(q1, publish(0, false)) {
		t.Error("a QoS 1 publish's buffer was reused")
	}
	if payload[0] != 0xF1 || payload[1] != 0 {
		t.Error("the device's own payload was written to")
	}
	// The failed publish's buffer still holds what it sent: nothing wrote to it since.
	if h, ok := readHeader(failed); !ok || h.Seq != 22 {
		t.Errorf("the failed publish's buffer: header %+v (ok %v), want seq 22", h, ok)
	}
}

// BenchmarkPortDeliverParallel is BenchmarkPortDeliver on every core at once, each
// goroutine a sink receiving its own stream, as the connections of a run do.
func BenchmarkPortDeliverParallel(b *testing.B) {
	meas := newMeasurement()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		st := meas.newStream("bench/load")
		p := benchPort(meas, "sink", &nullConn{}, true)
		payload := sim.Reserve(64)
		seq := uint64(0)
		for pb.Next() {
			seq++
			st.last.Store(seq)
			measure.AppendHeader(payload[:0], measure.Header{ID: st.id, Seq: seq, Sent: time.Now().UnixNano()})
			p.Deliver(sim.Message{Topic: "bench/load", Payload: payload})
		}
	})
}

func TestAStoppedDeviceSendsNothing(t *testing.T) {
	conn := &nullConn{}
	p := benchPort(newMeasurement(), "load", conn, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.PublishAt(ctx, time.Now(), "t", sim.Reserve(40), 0, false); !errors.Is(err, context.Canceled) {
		t.Errorf("publish after the device's context ended: %v, want context.Canceled", err)
	}
	if n := conn.n.Load(); n != 0 {
		t.Errorf("%d publishes reached the connection after the device's context ended", n)
	}
}

// TestABehindDeviceGivesWay checks that a device publishing back to back to catch up with
// its schedule lets other goroutines run between its sends, and that its late sends still
// all go out, counted late from their due times. On one P, a goroutine made runnable while
// the device publishes must run before the device is done with a hundred sends: far less
// than the 10 ms after which the runtime would preempt a device that never gave way.
func TestABehindDeviceGivesWay(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	conn := &nullConn{}
	p := benchPort(newMeasurement(), "load", conn, false)
	payload := sim.Reserve(64)
	ctx := context.Background()
	due := time.Now().Add(-time.Second) // its schedule started a second ago
	sent := 0
	publish := func() {
		if err := p.PublishAt(ctx, due.Add(time.Duration(sent)*time.Millisecond), "t/1", payload, 0, false); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	publish()
	for range 5 {
		var ran atomic.Bool
		go ran.Store(true) // runnable, on the one P, beside the device
		for i := 0; i < 100 && !ran.Load(); i++ {
			publish()
		}
		if !ran.Load() {
			t.Fatalf("a device %v behind made 100 sends without letting a runnable goroutine run", time.Since(due))
		}
	}
	if n := conn.n.Load(); n != int64(sent) {
		t.Errorf("%d of %d sends reached the connection", n, sent)
	}
	if s, l := p.km.scheduled.Load(), p.km.late.Load(); s != int64(sent) || l != int64(sent) {
		t.Errorf("%d scheduled, %d late; want %d of each", s, l, sent)
	}
}
