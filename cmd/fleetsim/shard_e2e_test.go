package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// shardScenario is a small fleet whose schedules end before the run does, so a run's
// counts do not depend on when it stopped: six homes of two load devices (ten readings
// each, in 2 s) on a connection per home, and a backend in home 1 that hears them all.
func shardScenario(t *testing.T, sink string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "shards.yaml")
	doc := `name: shards
duration: 4s
seed: 7
homes: 6
connections: per-home
devices:
  - kind: load
    count: 2
    qos: 0
    max_rate: 50
    params: {payload_bytes: 64, phases: [{for: 2s, rate: 5}]}
` + sink
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const homeOneSink = `  - kind: sink
    name: backend
    homes: 1
    params: {subscribe: ["home/+/load/#"]}
`

// shardReport is what the shard tests read of a report.
type shardReport struct {
	report
	Shard *struct {
		Index int    `json:"index"`
		Count int    `json:"count"`
		RunID string `json:"run_id"`
	} `json:"shard"`
	Streams *struct {
		Published []struct {
			Topic string `json:"topic"`
			Last  uint64 `json:"last"`
		} `json:"published"`
	} `json:"streams"`
	Clocks []struct {
		Reference   bool    `json:"reference"`
		Measured    bool    `json:"measured"`
		Offset      float64 `json:"offset_seconds"`
		Uncertainty float64 `json:"uncertainty_seconds"`
		Samples     int     `json:"round_trips"`
	} `json:"clocks"`
}

func readShardReport(t *testing.T, file string) shardReport {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r shardReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return r
}

// startAt is a start a few seconds ahead, for shards to share: room to connect and measure
// their clocks on a busy machine.
func startAt() (string, time.Time) {
	at := time.Now().Add(4 * time.Second).UTC()
	return at.Format(time.RFC3339Nano), at
}

// runShards runs shards 1..n of file (or the whole fleet as shard 1/1 when n is 1)
// against the brokers (one per shard, or one for all), starting together, and returns
// their report files and processes once all have ended with exit code 0.
func runShards(t *testing.T, file string, brokers []string, n int, at string, env ...[]string) ([]string, []*proc) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	var procs []*proc
	for i := 1; i <= n; i++ {
		out := filepath.Join(dir, "shard-"+string(rune('0'+i))+".json")
		var e []string
		if i-1 < len(env) {
			e = env[i-1]
		}
		p := start(t, e, "run", file, "--broker", brokers[min(i, len(brokers))-1], "--shard", string(rune('0'+i))+"/"+string(rune('0'+n)),
			"--start-at", at, "--metrics-addr", "off", "--quiet", "--report", out, "--grace", "3s")
		files, procs = append(files, out), append(procs, p)
	}
	for i, p := range procs {
		if code := p.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("shard %d/%d: exit code %d, want 0", i+1, n, code)
		}
	}
	return files, procs
}

var deviceLine = regexp.MustCompile(`(?m)^  home (\d+) (\S+) `)

// devicesIn lists the devices a run's summary names ("home 3 load-2").
func devicesIn(out string) []string {
	var ds []string
	for _, m := range deviceLine.FindAllStringSubmatch(out, -1) {
		ds = append(ds, m[1]+" "+m[2])
	}
	return ds
}

// clientIDs lists, per run id, the client id numbers that connected to mosquitto.
func clientIDs(log string) map[string][]string {
	ids := map[string][]string{}
	for _, m := range regexp.MustCompile(`as fleetsim-([0-9a-f]{6})-(\d+) `).FindAllStringSubmatch(log, -1) {
		ids[m[1]] = append(ids[m[1]], m[2])
	}
	for k := range ids {
		slices.Sort(ids[k])
	}
	return ids
}

func topicsOf(rs ...shardReport) []string {
	var ts []string
	for _, r := range rs {
		for _, p := range r.Streams.Published {
			ts = append(ts, p.Topic)
		}
	}
	slices.Sort(ts)
	return ts
}

// TestShardsAreTheSameFleet runs a scenario as one process and as three shards against a
// real mosquitto: the same devices, client ids and topics, and the merged report's
// counts are the single run's, every reading delivered once across shards.
func TestShardsAreTheSameFleet(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	file := shardScenario(t, homeOneSink)

	at1, _ := startAt()
	one, oneProcs := runShards(t, file, []string{m.URL()}, 1, at1)
	at3, _ := startAt()
	three, threeProcs := runShards(t, file, []string{m.URL()}, 3, at3)

	single := readShardReport(t, one[0])
	var shards []shardReport
	var devs []string
	for i, f := range three {
		shards = append(shards, readShardReport(t, f))
		devs = append(devs, devicesIn(threeProcs[i].stdout.String())...)
	}
	slices.Sort(devs)
	wantDevs := devicesIn(oneProcs[0].stdout.String())
	slices.Sort(wantDevs)
	if len(wantDevs) != 13 || !slices.Equal(devs, wantDevs) {
		t.Errorf("devices of the shards %v\nwant those of one process %v", devs, wantDevs)
	}
	if got, want := topicsOf(shards...), topicsOf(single); len(want) != 12 || !slices.Equal(got, want) {
		t.Errorf("topics of the shards %v\nwant %v", got, want)
	}
	ids := clientIDs(m.Log())
	runOne, runThree := single.Shard.RunID, shards[0].Shard.RunID
	if runOne == runThree || shards[1].Shard.RunID != runThree || shards[2].Shard.RunID != runThree {
		t.Errorf("run ids %s, %s %s %s: the shards of one run share one, two runs differ", runOne, runThree, shards[1].Shard.RunID, shards[2].Shard.RunID)
	}
	if len(ids[runOne]) != 6 || !slices.Equal(ids[runOne], ids[runThree]) {
		t.Errorf("client ids: one process %v, three shards %v; want the same 6", ids[runOne], ids[runThree])
	}

	merged := filepath.Join(t.TempDir(), "all.json")
	p := start(t, nil, append([]string{"merge", "--report", merged}, three...)...)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("merge: exit code %d, want 0", code)
	}
	all := readShardReport(t, merged)
	if all.Publishing.Scheduled != single.Publishing.Scheduled || all.Totals.Published != single.Totals.Published ||
		all.Publishing.Due != single.Publishing.Due || all.Totals.Delivered != single.Totals.Delivered ||
		all.Totals.Lost != 0 || single.Totals.Lost != 0 || single.Publishing.Scheduled != 120 || all.Latency.Count != int64(all.Totals.Delivered) {
		t.Errorf("merged: scheduled %d, published %d, due %d, delivered %d, lost %d; one process: %d, %d, %d, %d, %d; want equal, 120 scheduled, nothing lost",
			all.Publishing.Scheduled, all.Totals.Published, all.Publishing.Due, all.Totals.Delivered, all.Totals.Lost,
			single.Publishing.Scheduled, single.Totals.Published, single.Publishing.Due, single.Totals.Delivered, single.Totals.Lost)
	}
	if (all.Shard != nil && all.Shard.Count != 0) || !strings.Contains(p.stdout.String(), "fleetsim: passed") || !strings.Contains(p.stdout.String(), "end to end") {
		t.Errorf("the merged report is a whole run's, with the summary's table; got shard %v, stdout:\n%s", all.Shard, p.stdout)
	}
	checkMergeIsAMerge(t, three, one[0])
}

// checkMergeIsAMerge: merging one report gives it back, byte for byte, and the order of
// the reports does not change the merged one.
func checkMergeIsAMerge(t *testing.T, shards []string, single string) {
	t.Helper()
	dir := t.TempDir()
	back := filepath.Join(dir, "back.json")
	if code := start(t, nil, "merge", single, "--report", back).wait(t, 20*time.Second); code != 0 {
		t.Fatalf("merge of one report: exit code %d", code)
	}
	a, _ := os.ReadFile(single)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) {
		t.Errorf("merging one report changed it:\n%s\nwant\n%s", b, a)
	}
	var outs [][]byte
	for i, order := range [][]string{shards, {shards[2], shards[0], shards[1]}, {shards[1], shards[2], shards[0]}} {
		out := filepath.Join(dir, "m"+string(rune('0'+i))+".json")
		if code := start(t, nil, append([]string{"merge", "--report", out}, order...)...).wait(t, 20*time.Second); code != 0 {
			t.Fatalf("merge: exit code %d", code)
		}
		b, _ := os.ReadFile(out)
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) || !bytes.Equal(outs[0], outs[2]) {
		t.Errorf("the merged report depends on the order of the reports")
	}
}

// TestCrossShardLossIsCountedAtMerge: the publishers run in shard 1, a receiver in each
// shard; shard 2's connection goes through the fault proxy, which drops every 10th
// message to it and then, paused, the tail. Shard 2 alone sees only the gaps; shard 1
// does not know what shard 2 missed; the merged report counts exactly what the proxy
// kept from shard 2, and crosses the loss threshold each shard alone passed (exit 99).
func TestCrossShardLossIsCountedAtMerge(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	proxy := testbroker.StartProxy(t, m.Addr)
	file := filepath.Join(t.TempDir(), "cross.yaml")
	doc := `name: cross
duration: 6s
homes: 2
connections: per-home
thresholds: ["loss<10"]   # each shard alone passes it; the run does not
devices:
  - kind: load
    homes: 1
    count: 2
    qos: 0
    max_rate: 50
    params: {payload_bytes: 64, phases: [{for: 3s, rate: 10}]}
  - kind: sink
    params: {subscribe: ["home/1/load/#"]}
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	text, at := startAt()
	paused := make(chan struct{})
	var base testbroker.Stats // the clocks' round trips before the readings
	go func() {
		defer close(paused)
		// The faults start after the clocks' round trips (over before the devices start,
		// a second before at) and before the first reading: every 10th reading to shard 2
		// is dropped, and once it has had 35, it gets no more (the tail).
		time.Sleep(time.Until(at.Add(-500 * time.Millisecond)))
		base = proxy.Stats(testbroker.Downstream)
		proxy.SetRules(testbroker.Downstream, testbroker.Rules{DropEvery: 10})
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if proxy.Stats(testbroker.Downstream).Forwarded-base.Forwarded >= 35 {
				proxy.Pause(testbroker.Downstream)
				return
			}
		}
	}()
	files, _ := runShards(t, file, []string{m.URL(), proxy.URL()}, 2, text)
	<-paused
	st := proxy.Stats(testbroker.Downstream)
	st.Seen, st.Forwarded = st.Seen-base.Seen, st.Forwarded-base.Forwarded
	r1, r2 := readShardReport(t, files[0]), readShardReport(t, files[1])
	var published uint64
	for _, p := range r1.Streams.Published {
		published += p.Last
	}
	merged := filepath.Join(t.TempDir(), "all.json")
	p := start(t, nil, "merge", files[0], files[1], "--report", merged)
	if code := p.wait(t, 20*time.Second); code != 99 || !strings.Contains(p.stdout.String(), "FAILED loss<10") {
		t.Errorf("merge: exit code %d; want 99, the threshold no shard alone crossed", code)
	}
	all := readShardReport(t, merged)
	want := published - st.Forwarded // what shard 2's receiver never got
	if published != 60 || st.Dropped < 2 || st.Seen >= published || r2.Totals.Delivered != st.Forwarded {
		t.Fatalf("setup: %d published, proxy %+v, shard 2 got %d; want 60 published, drops, a tail, shard 2 getting what the proxy forwarded",
			published, st, r2.Totals.Delivered)
	}
	t.Logf("published %d; proxy to shard 2: seen %d, dropped %d, forwarded %d; shard 2 alone lost %d; merged lost %d",
		published, st.Seen, st.Dropped, st.Forwarded, r2.Totals.Lost, all.Totals.Lost)
	if r1.Totals.Lost != 0 || r1.Totals.Delivered != published || r2.Totals.Lost > st.Dropped {
		t.Errorf("shard 1 lost %d of %d, shard 2 alone lost %d (dropped %d): neither shard can see the tail", r1.Totals.Lost, r1.Totals.Delivered, r2.Totals.Lost, st.Dropped)
	}
	if all.Totals.Lost != want || all.Totals.Delivered != published+st.Forwarded {
		t.Errorf("merged: lost %d, delivered %d; want lost %d (%d dropped and %d never forwarded), delivered %d",
			all.Totals.Lost, all.Totals.Delivered, want, st.Dropped, published-st.Seen, published+st.Forwarded)
	}
}

// TestMergeRefusesWhatIsNotOneRun: reports that do not read, or are not the shards of
// one run, are exit 2 with the file named.
func TestMergeRefusesWhatIsNotOneRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	shard := func(i, n int, scenario, schema string) string {
		return `{"schema": "` + schema + `", "scenario": "` + scenario + `", "latency_seconds": {"count": 0},
			"histograms": {"latency": []}, "shard": {"index": ` + string(rune('0'+i)) + `, "count": ` + string(rune('0'+n)) + `, "run_id": "abc"},
			"streams": {"published": [], "received": []}}`
	}
	s1 := write("s1.json", shard(1, 2, "a", "fleetsim.report/v1"))
	s2 := write("s2.json", shard(2, 2, "a", "fleetsim.report/v1"))
	for name, c := range map[string]struct {
		files []string
		want  string
	}{
		"not JSON":       {[]string{s1, write("junk.json", "{not json")}, "junk.json: not a fleetsim JSON report"},
		"empty":          {[]string{write("empty.json", "")}, "empty.json: not a fleetsim JSON report"},
		"no schema":      {[]string{write("noschema.json", `{"scenario": "a"}`)}, "noschema.json: not a fleetsim JSON report: no schema field"},
		"other schema":   {[]string{s1, write("v9.json", shard(2, 2, "a", "fleetsim.report/v9"))}, `v9.json: report schema "fleetsim.report/v9"`},
		"other scenario": {[]string{s1, write("b.json", shard(2, 2, "b", "fleetsim.report/v1"))}, `b.json: scenario "b", but`},
		"missing shard":  {[]string{s1, write("s1of3.json", shard(3, 3, "a", "fleetsim.report/v1"))}, "shards of different splits"},
		"shard twice":    {[]string{s1, write("again.json", shard(1, 2, "a", "fleetsim.report/v1")), s2}, "shard 1/2 again (also "},
		"bad histogram": {[]string{write("hist.json", `{"schema": "fleetsim.report/v1", "scenario": "a", "latency_seconds": {"count": 1},
			"histograms": {"latency": [{"kind": "sink", "qos": 0, "latency": {"count": 1, "hdr": "garbage"}}]}}`)}, "hist.json: histograms.latency (sink, QoS 0)"},
		"no such file": {[]string{filepath.Join(dir, "none.json")}, "none.json: no such file"},
	} {
		p := start(t, nil, append([]string{"merge"}, c.files...)...)
		if code := p.wait(t, 10*time.Second); code != 2 || !strings.Contains(p.stderr.String(), c.want) {
			t.Errorf("%s: exit code %d, stderr %q; want 2 and %q", name, code, p.stderr.String(), c.want)
		}
	}
	p := start(t, nil, "merge", s1, write("s3.json", shard(1, 3, "a", "fleetsim.report/v1")), write("s33.json", shard(3, 3, "a", "fleetsim.report/v1")))
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Errorf("mixed splits: exit code %d, want 2", code)
	}
	p = start(t, nil, "merge", write("t1.json", shard(1, 3, "a", "fleetsim.report/v1")), write("t3.json", shard(3, 3, "a", "fleetsim.report/v1")))
	if code := p.wait(t, 10*time.Second); code != 2 || !strings.Contains(p.stderr.String(), "2 of 3 shards given; missing shard 2/3") {
		t.Errorf("a missing shard: exit code %d, stderr %q; want 2 naming shard 2/3", code, p.stderr)
	}
}

// TestShardClockSkewIsMeasured: shard 2's clock is 250 ms ahead (the test hook); over
// round trips through mosquitto it measures its offset to shard 1 within a few
// milliseconds, and the latency of what it sends to shard 1's backend is measured on one
// clock, not 250 ms off.
func TestShardClockSkewIsMeasured(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	at, _ := startAt()
	files, _ := runShards(t, shardScenario(t, homeOneSink), []string{m.URL()}, 2, at, nil, []string{"FLEETSIM_TEST_CLOCK_SKEW=250ms"})
	r1, r2 := readShardReport(t, files[0]), readShardReport(t, files[1])
	c1, c2 := r1.Clocks, r2.Clocks
	if len(c1) != 1 || !c1[0].Reference || len(c2) != 1 || !c2[0].Measured || c2[0].Reference {
		t.Fatalf("clocks %+v and %+v: want shard 1 the reference and shard 2 measured", c1, c2)
	}
	off, u := c2[0].Offset, c2[0].Uncertainty
	t.Logf("shard 2 skewed +250ms: offset %.3f ms ± %.3f ms over %d round trips", off*1e3, u*1e3, c2[0].Samples)
	if off > -0.245 || off < -0.255 || u <= 0 || u > 0.005 {
		t.Errorf("offset %v ± %v s, want -0.250 within 5 ms", off, u)
	}
	if r1.Totals.Delivered != 120 || r1.Latency.P99 > 0.1 {
		t.Errorf("shard 1's backend: %d delivered, p99 %v s; want the 120 readings, timed on one clock (not 250 ms off)", r1.Totals.Delivered, r1.Latency.P99)
	}
}

// TestAShardNeedsOnlyItsConnections: 30,000 connections do not fit in one process here,
// a third of them do; the shard gets past the capacity check to the broker (absent here).
func TestAShardNeedsOnlyItsConnections(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(f, []byte("name: big\nhomes: 30000\nconnections: per-device\ndevices: [{kind: load, period: 1m}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "tcp://127.0.0.1:" + strconv.Itoa(testbroker.FreePort(t))
	whole := start(t, nil, "run", f, "--metrics-addr", "off", "--broker", addr, "--connect-retry-for", "0")
	if code := whole.wait(t, 10*time.Second); code != 2 || !strings.Contains(whole.stderr.String(), "30000 connections need about") {
		t.Errorf("the whole fleet: exit code %d, stderr %q; want 2 and the numbers", code, whole.stderr)
	}
	shard := start(t, nil, "run", f, "--metrics-addr", "off", "--broker", addr, "--connect-retry-for", "0", "--shard", "2/3")
	if code := shard.wait(t, 20*time.Second); code != 3 || !strings.Contains(shard.stderr.String(), "shard 2/3: 10000 device(s) on 10000 connection(s)") {
		t.Errorf("shard 2/3: exit code %d, stderr %q; want 3 (unreachable broker) after the shard's size", code, shard.stderr)
	}
}
