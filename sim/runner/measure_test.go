package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/pace"
	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// streamer sends Count measured messages at Rate on its topic, on an open-model schedule,
// as reserved binary payloads or JSON objects.
type streamer struct {
	cfg sim.DeviceConfig
	p   streamParams
}

type streamParams struct {
	Rate    float64  `yaml:"rate"`
	Count   int      `yaml:"count"`
	JSON    bool     `yaml:"json"`
	Senders *senders `yaml:"-"` // if set, the streamers of the run, which its listeners wait for
}

// senders is the streamers of one run still sending. Once they are all through, the run's
// listeners stop too, and the run ends without waiting out its duration: that is only a
// bound, generous enough for a machine too busy to keep the streams' schedules.
type senders struct {
	running atomic.Int64
	once    sync.Once
	done    chan struct{} // closed when the last streamer is through
}

func newSenders() *senders { return &senders{done: make(chan struct{})} }

func (s *senders) start() {
	if s != nil {
		s.running.Add(1)
	}
}

func (s *senders) finish() {
	if s != nil && s.running.Add(-1) == 0 {
		s.once.Do(func() { close(s.done) })
	}
}

// allDone is closed when every streamer is through; nil (never) without senders.
func (s *senders) allDone() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.done
}

func (d *streamer) Run(ctx context.Context, io sim.IO) error {
	d.p.Senders.start()
	defer d.p.Senders.finish()
	start := time.Now().Add(50 * time.Millisecond) // let the listeners subscribe
	pacer := pace.Constant{Rate: d.p.Rate}
	io.SetState("sending")
	for i := range uint64(d.p.Count) {
		due, _ := pace.Due(pacer, start, i)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(due)):
		}
		payload := sim.Reserve(40)
		if d.p.JSON {
			payload = []byte(`{"n":1}`)
		}
		_ = io.PublishAt(ctx, due, d.cfg.Topic, payload, d.cfg.QoS, false)
	}
	io.SetState("done")
	if d.p.Senders == nil {
		<-ctx.Done()
	}
	return nil
}

// listener subscribes to Filter ("{prefix}" is its home's prefix) and drains its inbox.
type listener struct {
	cfg sim.DeviceConfig
	p   listenParams
}

type listenParams struct {
	Filter  string   `yaml:"filter"`
	Senders *senders `yaml:"-"` // if set, the listener stops once they are all through
}

func (d *listener) Run(ctx context.Context, io sim.IO) error {
	if _, err := io.Subscribe(ctx, strings.ReplaceAll(d.p.Filter, "{prefix}", d.cfg.Prefix), d.cfg.QoS); err != nil {
		return err
	}
	io.SetState("listening")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.p.Senders.allDone():
			return nil // what is on its way still arrives and is counted (the run's drain)
		case <-io.Inbox():
		}
	}
}

var measureKinds = map[string]sim.Kind{
	"streamer": sim.NewKind("test stream", func() streamParams { return streamParams{} },
		func(cfg sim.DeviceConfig, p streamParams) (sim.Device, error) { return &streamer{cfg, p}, nil }),
	"listener": sim.NewKind("test listener", func() listenParams { return listenParams{} },
		func(cfg sim.DeviceConfig, p listenParams) (sim.Device, error) { return &listener{cfg, p}, nil }),
}

// streamScenario has, per home, one listener on stream/# and one streamer sending count
// messages at rate and QoS qos. The run ends when the streams are through, or after
// three times the time they take and 3 s more: a busy machine may fall behind.
func streamScenario(qos byte, rate float64, count int, json bool) *scenario.Scenario {
	senders := newSenders()
	return &scenario.Scenario{
		File: "test.yaml", Name: "measure", Duration: 3*time.Duration(float64(count)/rate*float64(time.Second)) + 3*time.Second,
		Seed: 1, Homes: 1, TopicPrefix: "home/{home}", Connections: scenario.Connections{Mode: scenario.PerDevice},
		Groups: []scenario.Group{
			{Kind: "listener", Name: "listener", Count: 1, QoS: qos, MaxRate: 1e6, Topic: "{prefix}/l/{id}", Params: &listenParams{Filter: "stream/#", Senders: senders}},
			{Kind: "streamer", Name: "streamer", Count: 1, QoS: qos, MaxRate: 1e6, Topic: "stream/{id}", Params: &streamParams{Rate: rate, Count: count, JSON: json, Senders: senders}},
		},
	}
}

// runMeasured runs s against brokerURL with the measurement test kinds.
func runMeasured(t *testing.T, s *scenario.Scenario, brokerURL string, thresholds ...string) (*Summary, error, *metrics.Metrics) {
	t.Helper()
	ts, err := measure.ParseAll(thresholds)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry(), s.Name)
	// These runs are about the accounting: a busy machine may make the generator late, and
	// the verdict that says so is verdict_test.go's and the e2e tests' to check.
	sum, err := Run(context.Background(), Config{Scenario: s, Kinds: measureKinds, Metrics: m, Grace: 2 * time.Second,
		Conn:       mqttconn.Options{Broker: brokerURL, ConnectTimeout: 5 * time.Second, ReconnectCap: 200 * time.Millisecond},
		Thresholds: ts, AllowGeneratorLimit: true, Client: clientOf(t), Protocol: protocolOf(t)})
	return sum, err, m
}

// embedded starts a broker for one test; the test closes it (before goleak looks).
func embedded(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byKind returns the measured class of kind at qos.
func byKind(t *testing.T, sum *Summary, kind string, qos int) MeasuredKind {
	t.Helper()
	for _, k := range sum.Measured.ByKind {
		if k.Kind == kind && k.QoS == qos {
			return k
		}
	}
	t.Fatalf("no measurement for %s at QoS %d: %+v", kind, qos, sum.Measured.ByKind)
	return MeasuredKind{}
}

func TestEveryMessageIsAccountedFor(t *testing.T) { eachClient(t, testEveryMessageIsAccountedFor) }

func testEveryMessageIsAccountedFor(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	for _, c := range []struct {
		name string
		qos  byte
		json bool
	}{{"binary QoS 0", 0, false}, {"binary QoS 1", 1, false}, {"JSON QoS 2", 2, true}} {
		t.Run(c.name, func(t *testing.T) {
			sum, err, m := runMeasured(t, streamScenario(c.qos, 200, 100, c.json), b.URL())
			if err != nil {
				t.Fatal(err)
			}
			k := byKind(t, sum, "listener", int(c.qos))
			if k.Totals.Delivered != 100 || k.Totals.Lost != 0 || k.Totals.Duplicates != 0 || k.Totals.OutOfOrder != 0 {
				t.Errorf("totals %+v, want 100 delivered, nothing lost, duplicated or reordered", k.Totals)
			}
			if k.Latency.Count != 100 || k.Latency.Max <= 0 || k.Latency.Max > 2*time.Second {
				t.Errorf("latency %+v, want 100 values under 2s", k.Latency)
			}
			if sum.Measured.Scheduled != 100 {
				t.Errorf("%d scheduled sends, want 100", sum.Measured.Scheduled)
			}
			if c.qos > 0 && sum.Measured.Ack.Count != 100 {
				t.Errorf("%d acknowledgements timed, want 100", sum.Measured.Ack.Count)
			}
			q := string(rune('0' + c.qos))
			want := `
# HELP fleetsim_messages_delivered_total Distinct measured messages that reached devices of this kind (end-to-end accounting; duplicates not counted).
# TYPE fleetsim_messages_delivered_total counter
fleetsim_messages_delivered_total{kind="listener",qos="` + q + `"} 100
`
			if err := testutil.CollectAndCompare(m.Accounting, strings.NewReader(want), "fleetsim_messages_delivered_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestForgedHeadersDoNotMoveTheNumbers(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	// An outsider publishes, while the stream runs, headers that claim to be the streamer's
	// (publisher 1) far ahead of it, a publisher that does not exist, and plain garbage.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("outsider"))
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() != nil {
			return
		}
		defer c.Disconnect(0)
		forged := []string{
			`{"pub":1,"seq":1000000,"sent_ns":1}`,
			`{"pub":99,"seq":1,"sent_ns":1}`,
			string(measure.AppendHeader(nil, measure.Header{ID: 1, Seq: 5_000_000, Sent: 1})),
			"\x00\xff garbage",
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			c.Publish("stream/streamer-1", 0, false, forged[i%len(forged)]).WaitTimeout(time.Second)
		}
	}()
	sum, err, _ := runMeasured(t, streamScenario(0, 200, 100, true), b.URL())
	close(stop)
	<-done
	if err != nil && !errors.Is(err, ErrGeneratorLimit) { // the listener's inbox may overflow: not what this tests
		t.Fatal(err)
	}
	k := byKind(t, sum, "listener", 0)
	if k.Totals.Delivered != 100 || k.Totals.Lost != 0 || k.Totals.Duplicates != 0 {
		t.Errorf("totals %+v, want exactly the 100 real messages", k.Totals)
	}
	if sum.Measured.Forged == 0 || sum.Measured.UnmeasuredIn == 0 {
		t.Errorf("forged %d, unmeasured %d: want both counted", sum.Measured.Forged, sum.Measured.UnmeasuredIn)
	}
}

func TestThresholdsAndTheJSONReport(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	sum, err, _ := runMeasured(t, streamScenario(1, 200, 50, false), b.URL(), "loss==0", "latency_p99<1ns", "throughput>0")
	if err == nil || !strings.Contains(err.Error(), "thresholds crossed: 1 of 3") {
		t.Fatalf("err = %v, want one of three thresholds crossed", err)
	}
	var got []bool
	for _, r := range sum.Thresholds {
		got = append(got, r.OK)
	}
	if len(got) != 3 || !got[0] || got[1] || !got[2] {
		t.Errorf("verdicts %+v, want ok, failed, ok", sum.Thresholds)
	}
	var buf bytes.Buffer
	if err := sum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, buf.String())
	}
	// The documented schema: these fields exist with these types.
	for _, path := range []string{"schema", "scenario", "broker", "started", "elapsed_seconds", "interrupted", "passed",
		"totals.published", "totals.delivered", "totals.lost", "totals.duplicates", "totals.out_of_order", "totals.loss_ratio",
		"totals.throughput_per_second", "latency_seconds.p50", "latency_seconds.p99", "latency_seconds.p999", "latency_seconds.max",
		"publishing.scheduled", "publishing.late", "publishing.lag_seconds.p99", "publishing.ack_seconds.p99",
		"generator.cpu_seconds", "generator.utilisation", "generator.bottleneck", "generator.reasons",
		"by_kind", "kinds", "links", "thresholds", "errors"} {
		if _, ok := lookup(r, path); !ok {
			t.Errorf("report lacks %s", path)
		}
	}
	if v, _ := lookup(r, "schema"); v != ReportSchema {
		t.Errorf("schema %v", v)
	}
	if v, _ := lookup(r, "passed"); v != false {
		t.Errorf("passed = %v with a crossed threshold", v)
	}
	if v, _ := lookup(r, "totals.delivered"); v != 50.0 {
		t.Errorf("totals.delivered = %v, want 50", v)
	}
	ths, _ := lookup(r, "thresholds")
	if list, ok := ths.([]any); !ok || len(list) != 3 || list[1].(map[string]any)["ok"] != false ||
		list[1].(map[string]any)["threshold"] != "latency_p99<1ns" {
		t.Errorf("thresholds in the report: %v", ths)
	}
}

// lookup finds a dotted path in decoded JSON.
func lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

// viaProxy starts an embedded broker and a fault-injecting proxy in front of it; the test
// closes the broker (the proxy closes itself when the test ends).
func viaProxy(t *testing.T) (*broker.Broker, *testbroker.Proxy) {
	t.Helper()
	b := embedded(t)
	return b, testbroker.StartProxy(t, b.Addr())
}

func TestInjectedLossDuplicatesAndReorderingAreCountedExactly(t *testing.T) {
	eachClient(t, testInjectedLossDuplicatesAndReorderingAreCountedExactly)
}

func testInjectedLossDuplicatesAndReorderingAreCountedExactly(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules testbroker.Rules
		check func(t *testing.T, got measure.Totals, st testbroker.Stats)
	}{
		{"every 10th dropped", testbroker.Rules{DropEvery: 10}, func(t *testing.T, got measure.Totals, st testbroker.Stats) {
			// The 100th is dropped too: only the publisher's own count tells it was sent.
			if st.Dropped != 10 || got.Lost != 10 || got.Delivered != 90 || got.Duplicates != 0 {
				t.Errorf("proxy dropped %d; report %+v, want 10 lost and 90 delivered", st.Dropped, got)
			}
		}},
		{"every 10th duplicated", testbroker.Rules{DuplicateEvery: 10}, func(t *testing.T, got measure.Totals, st testbroker.Stats) {
			if st.Duplicated != 10 || got.Duplicates != 10 || got.Delivered != 100 || got.Lost != 0 {
				t.Errorf("proxy duplicated %d; report %+v, want 10 duplicates and 100 delivered", st.Duplicated, got)
			}
		}},
		{"every 10th swapped", testbroker.Rules{SwapEvery: 10}, func(t *testing.T, got measure.Totals, st testbroker.Stats) {
			// The last held one may go out alone (a swap timeout), which is no reordering.
			if st.Swapped < 9 || got.OutOfOrder != st.Swapped || got.Delivered != 100 || got.Lost != 0 {
				t.Errorf("proxy swapped %d; report %+v, want as many out of order and 100 delivered", st.Swapped, got)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			b, proxy := viaProxy(t)
			defer b.Close()
			defer proxy.Close()
			proxy.SetRules(testbroker.Upstream, c.rules) // publisher → broker
			sum, err, _ := runMeasured(t, streamScenario(0, 200, 100, false), proxy.URL())
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, byKind(t, sum, "listener", 0).Totals, proxy.Stats(testbroker.Upstream))
		})
	}
}

func TestInjectedDelayMovesTheLatency(t *testing.T) {
	b, proxy := viaProxy(t)
	defer b.Close()
	base, err, _ := runMeasured(t, streamScenario(0, 100, 100, false), proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	const delay = 50 * time.Millisecond
	proxy.SetRules(testbroker.Upstream, testbroker.Rules{Delay: delay})
	delayed, err, _ := runMeasured(t, streamScenario(0, 100, 100, false), proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	b0, d := byKind(t, base, "listener", 0).Latency, byKind(t, delayed, "listener", 0).Latency
	// No message can beat the delay, and the fastest one takes the delay plus what the
	// fastest took without it. The floor, not the median, is compared: on a machine busy
	// with other tests a run's median can wander by hundreds of milliseconds, its fastest
	// message hardly at all.
	t.Logf("latency without delay: min %v p50 %v; with %v: min %v p50 %v", b0.Min, b0.P50, delay, d.Min, d.P50)
	if d.Min < delay || d.Count != 100 {
		t.Errorf("delayed min %v over %d messages, want every one at least %v", d.Min, d.Count, delay)
	}
	if moved := d.Min - b0.Min; moved < delay-2*time.Millisecond || moved > delay+25*time.Millisecond {
		t.Errorf("fastest message moved by %v (%v → %v), want %v", moved, b0.Min, d.Min, delay)
	}
}

// TestStallShowsInTheLatency stalls the broker for a second in the middle of a stream: the
// messages due during the stall must show it in their latency (no coordinated omission),
// whether the publisher kept sending into the stall (QoS 0) or was held up by missing
// acknowledgements (QoS 1, where the sends themselves go out late and are counted so).
func TestStallShowsInTheLatency(t *testing.T) { eachClient(t, testStallShowsInTheLatency) }

func testStallShowsInTheLatency(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			b, proxy := viaProxy(t)
			defer b.Close()
			const stall = time.Second
			pause := time.AfterFunc(1500*time.Millisecond, func() { // the run connects first, then streams for 3 s
				proxy.Pause(testbroker.Upstream)
				time.AfterFunc(stall, func() { proxy.Resume(testbroker.Upstream) })
			})
			defer pause.Stop()
			sum, err, _ := runMeasured(t, streamScenario(qos, 100, 300, false), proxy.URL())
			if err != nil {
				t.Fatal(err)
			}
			k := byKind(t, sum, "listener", int(qos))
			if k.Totals.Delivered != 300 || k.Totals.Lost != 0 {
				t.Fatalf("totals %+v, want all 300 delivered", k.Totals)
			}
			// About 100 messages were due during the stall, waiting from up to 1 s down to
			// 0: the slowest waited nearly the whole stall, and the tenth-slowest of 300
			// (p90 is the 30th) still most of it.
			l := k.Latency
			if l.Max < stall-100*time.Millisecond || l.P90 < stall/2 {
				t.Errorf("latency max %v, p90 %v after a %v stall: the stall is hidden", l.Max, l.P90, stall)
			}
			if qos == 1 && (sum.Measured.Late < 50 || sum.Measured.Lag.Max < stall/2) {
				t.Errorf("QoS 1: %d late sends, lag max %v: the held-up sends are not counted late", sum.Measured.Late, sum.Measured.Lag.Max)
			}
		})
	}
}

// sourceRecorder relays TCP to upstream and records the source address of every client.
type sourceRecorder struct {
	ln      net.Listener
	mu      sync.Mutex
	sources map[string]int
	wg      sync.WaitGroup
}

func recordSources(t *testing.T, upstream string) *sourceRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &sourceRecorder{ln: ln, sources: map[string]int{}}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.sources[c.RemoteAddr().(*net.TCPAddr).IP.String()]++
			r.mu.Unlock()
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			r.wg.Go(func() { io.Copy(up, c); up.Close() })
			r.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	return r
}

func (r *sourceRecorder) close() { r.ln.Close(); r.wg.Wait() }

func TestConnectRateSourceAddressesAndPersistentSessions(t *testing.T) {
	eachClient(t, testConnectRateSourceAddressesAndPersistentSessions)
}

func testConnectRateSourceAddressesAndPersistentSessions(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	rec := recordSources(t, b.Addr())
	defer rec.close()
	s := streamScenario(1, 100, 50, false)
	s.Homes = 10 // 20 connections
	s.Connections.ConnectRate = 40
	s.Connections.Persistent = true
	s.Connections.SourceAddresses = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	begin := time.Now()
	sum, err, m := runMeasured(t, s, "tcp://"+rec.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// 20 connections at 40 a second: the last one opens about half a second in.
	if dialling := sum.Started.Sub(begin); dialling < 400*time.Millisecond {
		t.Errorf("20 connections opened in %v at 40/s; want at least 475ms", dialling)
	}
	rec.mu.Lock()
	got := maps.Clone(rec.sources)
	rec.mu.Unlock()
	if got["127.0.0.1"] != 10 || got["127.0.0.2"] != 10 {
		t.Errorf("connections by source address %v, want 10 from each", got)
	}
	// Every home's streamer publishes on the same topic, stream/streamer-1, with a stream of
	// its own; every listener hears all ten.
	if k := byKind(t, sum, "listener", 1); k.Totals.Delivered != 5000 || k.Totals.Streams != 100 || k.Totals.Lost != 0 {
		t.Errorf("persistent sessions: totals %+v, want 100 streams of 50 (10 listeners × 10 streamers)", k.Totals)
	}
	if n := testutil.ToFloat64(m.ConnectAttempts.WithLabelValues("ok")); n != 20 {
		t.Errorf("%v successful connects counted, want 20", n)
	}
}

// TestStreamTable registers streams from many goroutines at once, across chunk boundaries,
// and finds each by its id.
func TestStreamTable(t *testing.T) {
	var tab streamTable
	const workers, each = 8, streamChunkSize/2 + 3 // 4 chunks and a bit
	got := make([][]*outStream, workers)
	ids := newMeasurement().globalID // one process: ids as counted
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				got[w] = append(got[w], tab.add(fmt.Sprintf("t/%d/%d", w, i), ids))
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for w := range workers {
		for i, s := range got[w] {
			if s == nil || seen[s.id] || tab.get(s.id) != s || s.topic != fmt.Sprintf("t/%d/%d", w, i) {
				t.Fatalf("stream %d/%d: %+v, found %+v by its id", w, i, s, tab.get(s.id))
			}
			seen[s.id] = true
		}
	}
	if n := uint32(workers * each); len(seen) != int(n) || tab.get(0) != nil || tab.get(n+1) != nil {
		t.Errorf("%d ids for %d streams; get(0) %v, get(%d) %v", len(seen), n, tab.get(0), n+1, tab.get(n+1))
	}
}

// TestSummarySaysWhatTheProcessTook checks the memory line and the note a run gets when the
// devices' goroutines started with more than the smallest stack.
func TestSummarySaysWhatTheProcessTook(t *testing.T) {
	m := Measured{Scheduled: 1, Generator: Generator{MaxRSS: 4e9, Devices: 1_000_000, GOMAXPROCS: 4, GOGC: 25, MemoryLimit: 3800 << 20, StartingStack: 4096}}
	var buf bytes.Buffer
	m.print(&buf)
	out := buf.String()
	for _, want := range []string{"peak RSS 4000.0 MB (4000 bytes a device); GOMAXPROCS 4, GOGC 25, memory limit 3800 MiB",
		"started with 4096-byte stacks", "GODEBUG=adaptivestackstart=0"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	m.Generator.StartingStack = minStack
	buf.Reset()
	m.print(&buf)
	if strings.Contains(buf.String(), "adaptivestackstart") {
		t.Errorf("a note although the stacks started at the minimum:\n%s", buf.String())
	}
}
