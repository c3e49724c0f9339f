package main

// End-to-end tests of load testing: the real binary drives a real mosquitto with the load
// and sink kinds, writes the JSON report, and gates on thresholds.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// loadScenario is 20 meters in 2 homes sending rate readings a second each for duration,
// and two backends sharing the stream.
func loadScenario(t *testing.T, duration string, rate float64) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "load.yaml")
	doc := `name: e2e-load
duration: ` + duration + `
homes: 2
connections: {mode: per-device, connect_rate: 100}
thresholds: ["loss==0"]
devices:
  - kind: load
    name: meter
    count: 10
    qos: 1
    max_rate: 100
    topic: "{prefix}/meter/{id}"
    params: {payload_bytes: 100, rate: ` + strconv.FormatFloat(rate, 'f', -1, 64) + `}
  - kind: sink
    name: backend
    homes: 1
    count: 2
    qos: 1
    params: {subscribe: ["$share/backend/home/+/meter/#"]}
`
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// report is the part of the JSON report the tests read.
type report struct {
	Schema      string `json:"schema"`
	Interrupted bool   `json:"interrupted"`
	Passed      bool   `json:"passed"`
	Totals      struct {
		Published int64  `json:"published"`
		Delivered uint64 `json:"delivered"`
		Lost      uint64 `json:"lost"`
	} `json:"totals"`
	Latency struct {
		Count int64   `json:"count"`
		P99   float64 `json:"p99"`
	} `json:"latency_seconds"`
	Publishing struct {
		Scheduled int64 `json:"scheduled"`
	} `json:"publishing"`
	Generator struct {
		MaxRSSBytes int64 `json:"max_rss_bytes"`
		GOMAXPROCS  int   `json:"gomaxprocs"`
		GOGC        int   `json:"gogc"`
		MemoryLimit int64 `json:"memory_limit_bytes"`
		StartStack  int64 `json:"starting_stack_bytes"`
	} `json:"generator"`
	Thresholds []struct {
		Threshold string `json:"threshold"`
		OK        bool   `json:"ok"`
	} `json:"thresholds"`
}

func readReport(t *testing.T, file string) report {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report is not valid JSON: %v\n%s", err, b)
	}
	return r
}

func TestLoadAgainstMosquittoGatesOnThresholds(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	scenario := loadScenario(t, "3s", 20)
	t.Run("passing", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		p := start(t, nil, "run", scenario, "--broker", m.URL(), "--metrics-addr", "off", "--quiet", "--report", out,
			"--threshold", "latency_p99<5s")
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		r := readReport(t, out)
		// 20 meters at 20/s for 3 s: about 1,200 readings, every one delivered to the
		// backends' shared subscription exactly once.
		if r.Schema != "fleetsim.report/v1" || !r.Passed || r.Totals.Lost != 0 || r.Totals.Delivered < 1000 ||
			int64(r.Totals.Delivered) != r.Publishing.Scheduled || r.Latency.Count != int64(r.Totals.Delivered) {
			t.Errorf("report %+v: want every scheduled reading delivered once, timed, nothing lost", r)
		}
		if len(r.Thresholds) != 2 || !r.Thresholds[0].OK || !r.Thresholds[1].OK {
			t.Errorf("thresholds %+v: want the scenario's and the flag's, both ok", r.Thresholds)
		}
		if !strings.Contains(p.stdout.String(), "end to end") || !strings.Contains(p.stdout.String(), "ok     loss==0") {
			t.Errorf("the summary lacks the end-to-end table or the thresholds")
		}
		// A small fleet keeps Go's defaults, and the report says what they were and what the
		// process took: a few tens of megabytes.
		if g := r.Generator; g.MaxRSSBytes < 5<<20 || g.MaxRSSBytes > 2<<30 || g.GOMAXPROCS < 1 || g.GOGC != 100 || g.MemoryLimit != 0 ||
			g.StartStack < 2048 || g.StartStack&(g.StartStack-1) != 0 {
			t.Errorf("generator %+v: want the peak RSS, GOMAXPROCS, GOGC 100, no memory limit and a starting stack", g)
		}
		if !strings.Contains(p.stdout.String(), "memory: peak RSS") {
			t.Errorf("the summary lacks the memory line")
		}
	})
	t.Run("crossed", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		p := start(t, nil, "run", scenario, "--broker", m.URL(), "--metrics-addr", "off", "--quiet", "--report", out,
			"--threshold", "latency_p99<1us")
		if code := p.wait(t, 30*time.Second); code != 99 {
			t.Fatalf("exit code %d, want 99 (a threshold crossed)", code)
		}
		if r := readReport(t, out); r.Passed || len(r.Thresholds) != 2 || r.Thresholds[1].OK {
			t.Errorf("report %+v: want the latency threshold failed", r)
		}
		if !strings.Contains(p.stdout.String(), "FAILED latency_p99<1µs") || !strings.Contains(p.stderr.String(), "thresholds crossed: 1 of 2") {
			t.Errorf("the failure is not reported")
		}
	})
	t.Run("bad threshold", func(t *testing.T) {
		p := start(t, nil, "run", scenario, "--threshold", "latency_p98<1s")
		if code := p.wait(t, 10*time.Second); code != 2 || !strings.Contains(p.stderr.String(), `unknown metric "latency_p98"`) {
			t.Errorf("exit code %d; want 2 and the unknown metric named", code)
		}
	})
}

// TestStopWritesACompleteReport stops a run with SIGTERM: it stops sending, lets what is in
// flight arrive, and writes a complete report of what it measured, with nothing lost.
func TestStopWritesACompleteReport(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	out := filepath.Join(t.TempDir(), "report.json")
	p := start(t, nil, "run", loadScenario(t, "0s", 50), "--broker", m.URL(), "--metrics-addr", "off", "--quiet", "--report", out)
	time.Sleep(2 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	r := readReport(t, out)
	if !r.Interrupted || r.Totals.Delivered == 0 || r.Totals.Lost != 0 || int64(r.Totals.Delivered) != r.Publishing.Scheduled {
		t.Errorf("report %+v: want an interrupted run with every reading sent delivered and none lost", r)
	}
}

func TestCapacityIsCheckedBeforeTheRun(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(f, []byte("name: big\nhomes: 30000\nconnections: per-device\ndevices: [{kind: load, period: 1m}]\n"), 0o644)
	begin := time.Now()
	p := start(t, nil, "run", f, "--metrics-addr", "off")
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if took := time.Since(begin); took > 5*time.Second || !strings.Contains(p.stderr.String(), "30000 connections need about") {
		t.Errorf("after %v: stderr %q; want the numbers at once", took, p.stderr)
	}
}

// TestStuckBrokerKeepsMetricsAndCtrlC freezes the broker under a run: the metrics endpoint
// keeps answering, and Ctrl-C still stops the run within seconds.
func TestStuckBrokerKeepsMetricsAndCtrlC(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", loadScenario(t, "0s", 20), "--broker", m.URL(), "--metrics-addr", metricsAddr, "--quiet",
		"--connect-timeout", "1s", "--grace", "1s")
	scrape := func() string {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(scrape(), "fleetsim_messages_published_total"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no publishes seen in the metrics")
		}
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer m.Thaw()
	time.Sleep(2 * time.Second)
	begin := time.Now()
	body := scrape()
	if !strings.Contains(body, "fleetsim_publish_failures_total") || time.Since(begin) > time.Second {
		t.Errorf("the metrics endpoint did not answer promptly while the broker was stuck (%v)", time.Since(begin))
	}
	begin = time.Now()
	p.cmd.Process.Signal(os.Interrupt)
	// The scenario's loss==0 threshold is crossed: the stuck broker lost what was sent to it.
	if code := p.wait(t, 10*time.Second); code != 99 || !strings.Contains(p.stdout.String(), "interrupted") {
		t.Errorf("exit code %d after Ctrl-C; want 99 (loss==0 crossed) and an interrupted summary", code)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Ctrl-C took %v to stop the run", took)
	}
}
