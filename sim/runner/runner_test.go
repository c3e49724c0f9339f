package runner

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// pinger subscribes to its home's ping topics and publishes one retained ping, so every
// device of a home sees every ping of that home whatever order they start in.
type pinger struct {
	cfg  sim.DeviceConfig
	p    pingParams
	seen map[string]bool
}

type pingParams struct {
	Fail  bool `yaml:"fail"`  // return an error at once
	Flood int  `yaml:"flood"` // publish this many extra messages to itself and never read
}

func (d *pinger) Run(ctx context.Context, io sim.IO) error {
	if d.p.Fail {
		return errors.New("broken on purpose")
	}
	if _, err := io.Subscribe(ctx, d.cfg.Prefix+"/ping/#", 1); err != nil {
		return err
	}
	io.SetState("waiting")
	if err := io.Publish(ctx, d.cfg.Prefix+"/ping/"+d.cfg.ID, []byte(d.cfg.ID), 1, true); err != nil {
		return err
	}
	for i := range d.p.Flood {
		if err := io.Publish(ctx, d.cfg.Prefix+"/ping/"+d.cfg.ID, []byte{byte(i)}, 0, false); err != nil {
			return err
		}
	}
	if d.p.Flood > 0 {
		<-ctx.Done()
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-io.Inbox():
			d.seen[string(m.Payload)] = true
			io.SetState("heard-" + string(rune('0'+len(d.seen))))
		}
	}
}

var kinds = map[string]sim.Kind{
	"pinger": sim.NewKind("test device", func() pingParams { return pingParams{} },
		func(cfg sim.DeviceConfig, p pingParams) (sim.Device, error) {
			return &pinger{cfg: cfg, p: p, seen: map[string]bool{}}, nil
		}),
}

func testScenario(mode string, pool, homes, count int, params pingParams) *scenario.Scenario {
	return &scenario.Scenario{
		File: "test.yaml", Name: "test", Duration: 1500 * time.Millisecond, Seed: 1, Homes: homes,
		TopicPrefix: "home/{home}", Connections: scenario.Connections{Mode: mode, PoolSize: pool},
		Groups: []scenario.Group{{Kind: "pinger", Name: "pinger", Count: count, MaxRate: 1e6, Topic: scenario.DefaultTopic, Params: &params}},
	}
}

func runOn(t *testing.T, s *scenario.Scenario) (*Summary, error, *metrics.Metrics) {
	t.Helper()
	return runWith(t, s, nil)
}

// runWith runs s on a fresh embedded broker; progress, if set, gets progress lines.
func runWith(t *testing.T, s *scenario.Scenario, progress *bytes.Buffer) (*Summary, error, *metrics.Metrics) {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m := metrics.New(prometheus.NewRegistry(), s.Name)
	var console bytes.Buffer
	cfg := Config{Scenario: s, Kinds: kinds, Metrics: m, Console: &console,
		Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second}, Client: clientOf(t), Protocol: protocolOf(t)}
	if progress != nil {
		cfg.Progress, cfg.ProgressEvery = progress, 300*time.Millisecond
	}
	sum, err := Run(context.Background(), cfg)
	return sum, err, m
}

func TestConnectionModesAndRouting(t *testing.T) { eachClient(t, testConnectionModesAndRouting) }

func testConnectionModesAndRouting(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, c := range []struct {
		mode      string
		pool      int
		wantConns float64
	}{
		{scenario.PerDevice, 0, 6},
		{scenario.PerHome, 0, 2},
		{scenario.Pool, 4, 4},
	} {
		t.Run(c.mode, func(t *testing.T) {
			sum, err, m := runOn(t, testScenario(c.mode, c.pool, 2, 3, pingParams{}))
			if err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(m.ConnectAttempts.WithLabelValues("ok")); got != c.wantConns {
				t.Errorf("%v connections opened, want %v", got, c.wantConns)
			}
			if got := testutil.ToFloat64(m.Connections); got != 0 {
				t.Errorf("%v connections still counted open after the run", got)
			}
			k := sum.Kinds[0]
			// Six devices, one ping each; each hears the three pings of its own home
			// and none of the other home's (heard-3 below). A ping published while a
			// device subscribes may arrive both live and retained, so In may exceed 18.
			if k.Devices != 6 || k.Out != 6 || k.In < 18 || k.Dropped != 0 {
				t.Errorf("summary %+v, want 6 devices, 6 out, at least 18 in, 0 dropped", k)
			}
			for _, d := range sum.Devices {
				if last := d.States[len(d.States)-1]; last != "heard-3" {
					t.Errorf("home %d %s ended in %q, want heard-3 (states %v)", d.Home, d.ID, last, d.States)
				}
			}
		})
	}
}

func TestFailingDeviceIsReportedOthersRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testScenario(scenario.PerHome, 0, 1, 2, pingParams{})
	s.Groups = append(s.Groups, scenario.Group{Kind: "pinger", Name: "broken", Count: 1, MaxRate: 10, Topic: scenario.DefaultTopic, Params: &pingParams{Fail: true}})
	sum, err, _ := runOn(t, s)
	if err == nil || !strings.Contains(err.Error(), "broken-1: broken on purpose") {
		t.Fatalf("err = %v, want the broken device named", err)
	}
	if sum == nil || len(sum.Errors) != 1 || sum.Kinds[0].Out != 2 {
		t.Fatalf("summary %+v: want one error and the two healthy devices' pings", sum)
	}
}

func TestFullInboxDropsAndCounts(t *testing.T) {
	defer goleak.VerifyNone(t)
	sum, err, m := runOn(t, testScenario(scenario.PerHome, 0, 1, 1, pingParams{Flood: 3 * inboxSize}))
	// Messages fleetsim's own device could not take are lost on the generator's side of the
	// wire: the run did not measure the broker.
	if !errors.Is(err, ErrGeneratorLimit) || sum.Verdict != GeneratorLimited || !strings.Contains(sum.Reasons[0], "dropped") {
		t.Fatalf("err %v, verdict %v: want the generator named as the limit for the dropped messages", err, sum.Verdict)
	}
	k := sum.Kinds[0]
	// The device never reads: its inbox holds inboxSize messages, the rest are dropped.
	if k.In != inboxSize || k.Dropped == 0 || k.In+k.Dropped > k.Out {
		t.Errorf("in %d, dropped %d, out %d: want in = %d and the rest dropped", k.In, k.Dropped, k.Out, inboxSize)
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("pinger")); got != float64(k.Dropped) {
		t.Errorf("dropped metric %v, summary %d", got, k.Dropped)
	}
}

func TestDialFailureIsExplained(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testScenario(scenario.PerDevice, 0, 1, 3, pingParams{})
	_, err := Run(context.Background(), Config{Scenario: s, Kinds: kinds, Metrics: metrics.New(prometheus.NewRegistry(), "t"),
		Conn: mqttconn.Options{Broker: "tcp://127.0.0.1:1", ConnectTimeout: 2 * time.Second}})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want connection refused", err)
	}
}

func TestRunEndsWhenNoDeviceIsLeft(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testScenario(scenario.PerHome, 0, 1, 2, pingParams{Fail: true})
	s.Duration = 0 // would run until interrupted
	begin := time.Now()
	_, err, _ := runWith(t, s, &bytes.Buffer{}) // progress on: its goroutine must not keep the run alive
	if err == nil || !strings.Contains(err.Error(), "2 device(s) stopped with errors") {
		t.Fatalf("err = %v, want both devices reported", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("Run took %v to notice that no device was left", took)
	}
}

func TestProgressLines(t *testing.T) {
	defer goleak.VerifyNone(t)
	var progress bytes.Buffer
	if _, err, _ := runWith(t, testScenario(scenario.PerHome, 0, 2, 3, pingParams{}), &progress); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	// 1.5 s run, a line every 300 ms.
	if len(lines) < 3 || !strings.Contains(lines[0], "6 devices, 2/2 connections up") || !strings.Contains(lines[0], "msg/s out") ||
		!strings.Contains(lines[0], "p99 ") || !strings.Contains(lines[0], " 0 lost") {
		t.Fatalf("progress lines:\n%s", progress.String())
	}
}

// TestConnectionLinks checks that links are made per connection: with shared connections
// one link per connection, which its devices share; with per-device connections one per
// device, the connections' link being the default for groups without their own.
func TestConnectionLinks(t *testing.T) {
	defer goleak.VerifyNone(t)
	hub := &link.Profile{Name: "hub", UpBytesPerSec: 1e6, DownBytesPerSec: 1e6, Latency: time.Millisecond}
	radio := &link.Profile{Name: "radio", UpBytesPerSec: 5e5, DownBytesPerSec: 5e5, Latency: 2 * time.Millisecond}
	for _, c := range []struct {
		name      string
		mode      string
		pool      int
		groupLink *link.Profile // the second group's own link (per-device only)
		want      map[string]int
	}{
		{"per-home", scenario.PerHome, 0, nil, map[string]int{"hub": 2}},
		{"pool", scenario.Pool, 3, nil, map[string]int{"hub": 3}},
		{"per-device", scenario.PerDevice, 0, radio, map[string]int{"hub": 4, "radio": 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Two homes of two pingers and one more in a group of its own.
			s := testScenario(c.mode, c.pool, 2, 2, pingParams{})
			s.Duration = time.Second
			s.Connections.Link = hub
			s.Groups = append(s.Groups, s.Groups[0])
			s.Groups[1].Name, s.Groups[1].Count, s.Groups[1].Link = "other", 1, c.groupLink
			sum, err, m := runOn(t, s)
			if err != nil {
				t.Fatal(err)
			}
			totals := m.Links.Totals()
			conns := 0
			for profile, n := range c.want {
				conns += n
				if got := totals[profile].Links; got != n {
					t.Errorf("%d %s links, want %d", got, profile, n)
				}
			}
			if len(totals) != len(c.want) {
				t.Errorf("links of profiles %v, want %v", totals, c.want)
			}
			if got := testutil.ToFloat64(m.ConnectAttempts.WithLabelValues("ok")); got != float64(conns) {
				t.Errorf("%v connections, want one per link: %d", got, conns)
			}
			// Every byte the devices published went over the links, with MQTT's own.
			var up int64
			for _, tl := range totals {
				up += tl.BytesUp
			}
			if k := sum.Kinds[0]; k.Out != 6 || up <= k.OutBytes {
				t.Errorf("links carried %d bytes up; the devices published %d messages of %d bytes", up, k.Out, k.OutBytes)
			}
			for _, d := range sum.Devices {
				if last := d.States[len(d.States)-1]; last != "heard-3" {
					t.Errorf("home %d %s ended in %q, want heard-3 (states %v)", d.Home, d.ID, last, d.States)
				}
			}
			if rows := len(sum.Links); rows != len(c.want) {
				t.Errorf("summary has %d link rows, want %d: %+v", rows, len(c.want), sum.Links)
			}
		})
	}
}

// TestLinkSummaryByProfile checks that links under one name with different figures (two
// groups overriding wifi differently) are summarised apart, each with its own rates.
func TestLinkSummaryByProfile(t *testing.T) {
	a := link.Profile{Name: "wifi*", UpBytesPerSec: 8000, DownBytesPerSec: 2.5e6}
	b := link.Profile{Name: "wifi*", UpBytesPerSec: 50000, DownBytesPerSec: 2.5e6}
	var links []*link.Link
	for _, p := range []link.Profile{a, b, a, {Name: "lan"}} {
		l := link.NewLink(p, nil)
		defer l.Close()
		links = append(links, l, nil)
	}
	got := summariseLinks(links, time.Second, nil, backlog{})
	want := []struct {
		name  string
		links int
		up    float64
	}{{"wifi*", 2, 8000}, {"wifi*", 1, 50000}, {"lan", 1, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Profile != w.name || got[i].Links != w.links || got[i].UpRate != w.up {
			t.Errorf("row %d = %+v, want %s, %d links, %v B/s up", i, got[i], w.name, w.links, w.up)
		}
	}
	var out bytes.Buffer
	(&Summary{Links: got}).Print(&out)
	if !strings.Contains(out.String(), "50000") || !strings.Contains(out.String(), "8000") {
		t.Errorf("printed summary lacks one of the rates:\n%s", out.String())
	}
}

func TestProgressInPlaceOnATerminal(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	var out bytes.Buffer
	cfg := Config{Scenario: testScenario(scenario.PerHome, 0, 1, 2, pingParams{}), Kinds: kinds,
		Metrics: metrics.New(prometheus.NewRegistry(), "t"), Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second},
		Progress: &out, ProgressEvery: 300 * time.Millisecond, ProgressInPlace: true}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	// Every update starts by returning to the start of the line and erasing it; only the
	// last one ends with a newline.
	if n := strings.Count(got, "\r\033[K"); n < 3 || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("%d in-place updates, %d newlines in %q", n, strings.Count(got, "\n"), got)
	}
}
