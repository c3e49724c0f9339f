package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// BenchmarkClassroomViewers runs the same load on the embedded broker with no viewer and
// with 30 viewers of the classroom view, below the view's animation limit (every message
// is sent to every viewer) and far above it (the view sends rates): the issue asks that
// throughput and latency move by less than 5 %. Run it alone:
//
//	go test -run '^$' -bench ClassroomViewers -benchtime 1x ./cmd/fleetsim
//
// -count runs each sub-benchmark that many times in a row, so on a busy machine the
// runs with and without viewers see different neighbours: alternate them instead, one
// -test.bench pattern at a time (the README's classroom section says how).
func BenchmarkClassroomViewers(b *testing.B) {
	for _, rate := range []int{200, 5000} {
		for _, viewers := range []int{0, 30} {
			b.Run(fmt.Sprintf("rate=%d/viewers=%d", rate, viewers), func(b *testing.B) {
				for range b.N {
					classroomLoad(b, rate, viewers)
				}
			})
		}
	}
}

// classroomLoad runs 20 load devices sending rate messages a second in all (QoS 1, 64
// bytes, to one sink) for 8 s after a 3 s pause in which viewers connect, and reports the
// run's throughput and latency.
func classroomLoad(b *testing.B, rate, viewers int) {
	dir := b.TempDir()
	scenario := filepath.Join(dir, "load.yaml")
	doc := fmt.Sprintf(`name: classroom-bench
duration: 11s
homes: 1
connections: per-device
devices:
  - kind: load
    count: 20
    qos: 1
    max_rate: %d
    params: {payload_bytes: 64, phases: [{for: 3s}, {for: 8s, rate: %g}]}
  - kind: sink
    qos: 1
    params: {subscribe: ["home/+/load/#"]}
`, rate, float64(rate)/20)
	if err := os.WriteFile(scenario, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "report.json")
	stderr := &syncBuffer{}
	cmd := exec.Command(binary, "run", scenario, "--listen", fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(b)),
		"--metrics-addr", "off", "--quiet", "--progress", "1h", "--report", out, "--allow-generator-limit", "--ui", "127.0.0.1:0")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	url := ""
	re := regexp.MustCompile(`classroom view on (http://\S+/)`)
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		_ = cmd.Process.Kill()
		b.Fatalf("no view address: %s", stderr)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range viewers {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _, _ = io.Copy(io.Discard, resp.Body); resp.Body.Close() })
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("fleetsim: %v\n%s", err, stderr)
	}
	cancel()
	wg.Wait()
	var r struct {
		Totals struct {
			Delivered  uint64  `json:"delivered"`
			Lost       uint64  `json:"lost"`
			Throughput float64 `json:"throughput_per_second"`
		} `json:"totals"`
		Latency   struct{ P50, P99 float64 } `json:"latency_seconds"`
		Generator struct {
			CPU float64 `json:"cpu_seconds"`
		} `json:"generator"`
	}
	data, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(data, &r) != nil {
		b.Fatalf("report: %v", err)
	}
	b.ReportMetric(r.Totals.Throughput, "msgs/s")
	b.ReportMetric(r.Latency.P50*1e6, "p50-µs")
	b.ReportMetric(r.Latency.P99*1e6, "p99-µs")
	b.ReportMetric(float64(r.Totals.Lost), "lost")
	b.ReportMetric(r.Generator.CPU, "cpu-s") // the whole fleetsim process: broker, devices and view
}
