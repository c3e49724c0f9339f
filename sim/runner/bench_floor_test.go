package runner_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/lean"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/pace"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// The paho floor: what fleetsim's throughput benchmarks cost without fleetsim. Plain paho
// clients in the same shape (publishers over the same connections, paced on the same
// open-model schedule, one subscriber on "bench/#") with the least accounting that still
// proves zero loss: a sequence number per publisher and a latency histogram. fleetsim's
// CPU per message above this floor is fleetsim's own.

func BenchmarkPahoFloorQoS0(b *testing.B) { benchFloor(b, shapeQoS0) }
func BenchmarkPahoFloorQoS1(b *testing.B) { benchFloor(b, shapeQoS1) }

// The lean floor: the same harness with plain lean connections (sim/lean) instead of paho
// clients, the least the lean transport costs.
func BenchmarkLeanFloorQoS0(b *testing.B) { benchFloor(b, shapeQoS0.over(scenario.ClientLean)) }
func BenchmarkLeanFloorQoS1(b *testing.B) { benchFloor(b, shapeQoS1.over(scenario.ClientLean)) }

func benchFloor(b *testing.B, sh shape) {
	sh, sz := sh.withFlags(), sizes()
	m := benchBroker(b)
	for b.Loop() {
		if *benchRate > 0 {
			holdRate(b, floorStep(b, m, sh, *benchRate, sz.step))
			continue
		}
		best := search(b, sh, sz.bisect, func(rate float64) stepResult { return floorStep(b, m, sh, rate, sz.step) })
		ref := floorStep(b, m, sh, sh.ref, sz.step)
		b.Logf("reference: %v", ref)
		if best.delivered == 0 {
			b.Fatalf("no rate from %.0f msg/s up was sustained", sh.start)
		}
		reportThroughput(b, best, ref)
	}
}

// floorHeader is what a floor payload starts with: publisher, seq, due time (Unix ns).
const floorHeader = 4 + 8 + 8

// floorSub is the floor's subscriber: it counts what arrives per publisher.
type floorSub struct {
	mu        sync.Mutex
	last      []uint64 // highest seq per publisher
	delivered uint64
	dups      uint64
	bad       uint64
	lat       *measure.Recorder
}

func (s *floorSub) handle(_ mqtt.Client, msg mqtt.Message) { s.take(msg.Payload()) }

// Deliver is the lean subscriber's way in.
func (s *floorSub) Deliver(m sim.Message) { s.take(m.Payload) }

func (s *floorSub) take(p []byte) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) < floorHeader || int(binary.BigEndian.Uint32(p)) >= len(s.last) {
		s.bad++
		return
	}
	pub, seq, due := binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), int64(binary.BigEndian.Uint64(p[12:]))
	if seq <= s.last[pub] {
		s.dups++
		return
	}
	s.last[pub] = seq
	s.delivered++
	s.lat.Record(time.Duration(now - due))
}

func (s *floorSub) count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered
}

// floorStep runs the floor at rate for d against m.
func floorStep(b *testing.B, m *testbroker.Mosquitto, sh shape, rate float64, d time.Duration) stepResult {
	b.Helper()
	r := stepResult{rate: rate}
	nconns := sh.conns
	if nconns == 0 {
		nconns = sh.pubs + 1
	}
	sub := &floorSub{last: make([]uint64, sh.pubs), lat: measure.NewRecorder()}
	clients, err := floorClients(m, sh, nconns, sub)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Go(c.close)
			}
		}
		wg.Wait()
	}()
	if err != nil {
		r.err = err
		return r
	}

	per := rate / float64(sh.pubs)
	total := pace.Phases([]pace.Phase{{Pacer: pace.Constant{Rate: per}, Duration: d}}).Total()
	r.expected = total * uint64(sh.pubs)
	cpu0, broker0, gc0 := processCPU(), brokerCPU(m), gcCycles()
	reads0, writes0 := syscalls()
	start := time.Now().Add(pause)
	var late, failed atomic.Int64
	var wg sync.WaitGroup
	for j := range sh.pubs {
		c := clients[(j+1)%nconns] // as runner's pool: device j+1 (the subscriber is device 0)
		wg.Go(func() {
			topic := fmt.Sprintf("bench/load-%d", j+1)
			buf := []byte(strings.Repeat(".", sh.payload))
			binary.BigEndian.PutUint32(buf, uint32(j))
			first := start.Add(time.Duration(float64(j) / float64(sh.pubs) / per * float64(time.Second)))
			timer := time.NewTimer(0)
			<-timer.C
			for i := range total {
				due := first.Add(time.Duration(float64(i) / per * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					<-timer.C
				} else if -wait > runner.LateAfter {
					late.Add(1)
				}
				binary.BigEndian.PutUint64(buf[4:], i+1)
				binary.BigEndian.PutUint64(buf[12:], uint64(due.UnixNano()))
				// The buffer is reused only once paho is done with it: the token completes
				// after the write (QoS 0) or the acknowledgement (QoS 1).
				if c.publish(topic, sh.qos, buf) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// Drain: until everything arrived, or nothing more did for 300 ms (3 s at most).
	deadline := time.Now().Add(3 * time.Second)
	last, lastChange := sub.count(), time.Now()
	for n := last; n < r.expected && time.Since(lastChange) < 300*time.Millisecond && time.Now().Before(deadline); n = sub.count() {
		if n != last {
			last, lastChange = n, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.cpu, r.brokerCPU, r.gc = processCPU()-cpu0, brokerCPU(m)-broker0, gcCycles()-gc0
	reads, writes := syscalls()
	r.reads, r.writes = reads-reads0, writes-writes0
	sub.mu.Lock()
	defer sub.mu.Unlock()
	r.delivered, r.dups = sub.delivered, sub.dups
	r.lost = r.expected - min(r.delivered, r.expected)
	r.scheduled, r.late = int64(r.expected), late.Load()
	lat := sub.lat.Snapshot()
	r.p50, r.p99 = lat.P50, lat.P99
	if f := failed.Load(); f > 0 || sub.bad > 0 {
		r.err = fmt.Errorf("%d publishes failed, %d malformed deliveries", f, sub.bad)
	}
	return r
}

// floorConn is one of the floor's connections, paho's or lean's.
type floorConn interface {
	publish(topic string, qos byte, payload []byte) error // returns when complete for its QoS
	close()
}

type pahoFloor struct{ mqtt.Client }

func (c pahoFloor) publish(topic string, qos byte, payload []byte) error {
	tok := c.Publish(topic, qos, false, payload)
	tok.Wait()
	return tok.Error()
}

func (c pahoFloor) close() { c.Disconnect(250) }

type leanFloor struct{ *lean.Conn }

func (c leanFloor) publish(topic string, qos byte, payload []byte) error {
	return c.Publish(context.Background(), topic, payload, qos, false)
}

func (c leanFloor) close() { c.Close() }

// floorClients connects n clients of sh's client to m, the first subscribed to "bench/#"
// for sub. On error, the clients made so far are returned with it, to be closed.
func floorClients(m *testbroker.Mosquitto, sh shape, n int, sub *floorSub) ([]floorConn, error) {
	clients := make([]floorConn, n)
	for i := range clients {
		id := fmt.Sprintf("floor-%d", i)
		if sh.client == scenario.ClientLean {
			c, err := lean.Dial(context.Background(), lean.Config{Options: mqttconn.Options{Broker: m.URL(), ConnectTimeout: 10 * time.Second}}, id)
			if err != nil {
				return clients, fmt.Errorf("connect: %w", err)
			}
			clients[i] = leanFloor{c}
			continue
		}
		o := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return clients, fmt.Errorf("connect: %v", tok.Error())
		}
		clients[i] = pahoFloor{c}
	}
	if c, ok := clients[0].(leanFloor); ok {
		if _, err := c.Subscribe(context.Background(), "bench/#", sh.qos, sub); err != nil {
			return clients, err
		}
		return clients, nil
	}
	c := clients[0].(pahoFloor)
	if tok := c.Subscribe("bench/#", sh.qos, sub.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return clients, fmt.Errorf("subscribe: %v", tok.Error())
	}
	return clients, nil
}

// gcCycles is how many garbage collections this process has completed.
func gcCycles() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// processCPU is this process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
