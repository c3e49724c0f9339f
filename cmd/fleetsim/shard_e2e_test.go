package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	Clock *struct {
		Reference   bool    `json:"reference"`
		Measured    bool    `json:"measured"`
		Offset      float64 `json:"offset_seconds"`
		Uncertainty float64 `json:"uncertainty_seconds"`
	} `json:"clock"`
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

// startAt is a start a few seconds ahead, for shards to share.
func startAt(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }

// runShards runs shards 1..n of file (or the whole fleet as shard 1/1 when n is 1)
// against the brokers (one per shard, or one for all), starting together, and returns
// their report files and processes once all have ended with exit code 0.
func runShards(t *testing.T, file string, brokers []string, n int, env ...[]string) ([]string, []*proc) {
	t.Helper()
	at := startAt(3 * time.Second)
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

	one, oneProcs := runShards(t, file, []string{m.URL()}, 1)
	three, threeProcs := runShards(t, file, []string{m.URL()}, 3)

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
