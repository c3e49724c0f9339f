package main

// The Prometheus test proves the dashboard against the real thing: two fleetsim processes
// (the binary TestMain builds), each serving its own metrics on loopback, scraped every
// second by a real Prometheus (Debian's, which `make deps` installs) with native histograms
// on, and by a second one that stores only classic buckets; then every query of
// dashboards/fleetsim.json, Grafana's variables filled in as Grafana fills them, goes to
// each Prometheus's HTTP API and must be accepted and return data, and every quantile must
// sum the histograms of both processes. promtool lints a real scrape of each process.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// proofScenarios are the two runs Prometheus scrapes. Both publish measured payloads at
// QoS 0 and 1 into a sink, over shaped links slow enough that sends wait for bandwidth,
// so every quantile panel has observations from both. The first shares one slow Wi-Fi
// link per home among a load generator, a sink, a phone and a bulb (device states and
// state changes); the second gives each device its own throttled link.
var proofScenarios = map[string]string{
	"dash-a": `name: dash-a
day: 1m
start: "07:59"
homes: 2
connections: {mode: per-home, link: {profile: wifi, name: wifi-slow, up_bytes_per_sec: 3000}}
devices:
  - kind: load
    name: meter
    qos: 1
    max_rate: 50
    params: {payload_bytes: 64, rate: 20}
  - kind: sink
    name: backend
    homes: 1
    qos: 1
    params: {subscribe: ["home/+/load/#"]}
  - kind: phone
    period: 1s
    qos: 1
  - kind: bulb
    qos: 1
`,
	"dash-b": `name: dash-b
connections: {mode: per-device, link: {profile: lan, name: lan-throttled, up_bytes_per_sec: 2000}}
devices:
  - kind: load
    name: meter0
    qos: 0
    max_rate: 50
    topic: "{prefix}/meter0"
    params: {payload_bytes: 64, rate: 10}
  - kind: load
    name: meter1
    qos: 1
    max_rate: 50
    topic: "{prefix}/meter1"
    params: {payload_bytes: 64, rate: 20}
  - kind: sink
    name: backend
    qos: 1
`,
}

// runDependent are the panels that have data only in some runs, each with what its
// description says about when. The test's runs meet every condition, so these too must
// answer with data here. Panels not listed have data in every run: fleetsim serves their
// counters (publish failures, forged payloads, losses, outages of a shaped link...) at
// zero from the first scrape, so Prometheus has a series to answer with before anything
// has gone wrong.
var runDependent = map[string]string{
	"Connections up":                    "only in runs with the embedded broker", // its broker line
	"Publish → ack latency p50 and p99": "only in runs that publish at QoS 1 or 2",
	"Schedule lag p99":                  "only in runs with devices that keep a schedule",
	"Sends due and behind":              "only in runs with devices that keep a schedule",
	"Link throughput":                   "only in runs with shaped links",
	"Waiting for bandwidth":             "only in runs with shaped links",
	"Single wait p99":                   "only in runs with shaped links",
	"Outages":                           "only in runs with shaped links",
	"Connects over links":               "only in runs with shaped links",
	"Broker state":                      "only in runs with the embedded broker",
	"Broker messages/s":                 "only in runs with the embedded broker",
	"Broker bytes/s":                    "only in runs with the embedded broker",
}

// TestDashboardRunDependentPanels keeps runDependent and the dashboard in step: a listed
// panel's description says when it has data, and no other panel's says it has data only
// in some runs.
func TestDashboardRunDependentPanels(t *testing.T) {
	d, _ := readDashboard(t)
	seen := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		when, listed := runDependent[p.Title]
		seen[p.Title] = listed
		switch {
		case listed && !strings.Contains(p.Description, when):
			t.Errorf("panel %q has data %s, but its description does not say so: %q", p.Title, when, p.Description)
		case !listed && strings.Contains(p.Description, "only in runs"):
			t.Errorf("panel %q says it has data only in some runs; add it to runDependent with the condition", p.Title)
		}
	}
	for title := range runDependent {
		if !seen[title] {
			t.Errorf("runDependent lists %q, which the dashboard has no panel of", title)
		}
	}
}

// TestPrometheusConfigs has promtool check the Prometheus configurations dashboards/
// ships: the one beside `make run` and the one compose.yaml mounts.
func TestPrometheusConfigs(t *testing.T) {
	promtool := testbroker.RequireTool(t, "promtool")
	for _, name := range []string{"prometheus.yml", "prometheus-compose.yml"} {
		out, err := exec.Command(promtool, "check", "config", filepath.Join(dashboardsDir, name)).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check config dashboards/%s: %v\n%s", name, err, out)
		}
	}
}

// promAPI is a Prometheus's HTTP API.
type promAPI struct {
	base string
	name string // which of the test's Prometheus servers it is
}

// promResult is one series of an instant query's answer: its labels and, for a float
// sample, its value (a native histogram sample has none).
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Hist   []any             `json:"histogram"`
}

// float is the series' float value, NaN for a histogram sample.
func (r promResult) float() float64 {
	if len(r.Value) != 2 {
		return math.NaN()
	}
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// errRejected is an answer in which Prometheus refused the query itself.
type errRejected struct{ msg string }

func (e errRejected) Error() string { return "prometheus refused the query: " + e.msg }

// get calls path with the query parameters and decodes the answer's data into v.
func (p promAPI) get(ctx context.Context, path string, params url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return fmt.Errorf("prometheus %s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		if body.ErrorType == "bad_data" {
			return errRejected{body.Error}
		}
		return fmt.Errorf("prometheus %s: %s: %s: %s", path, resp.Status, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

// query runs an instant query now.
func (p promAPI) query(ctx context.Context, q string) ([]promResult, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promResult `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector (a panel's query)", q, data.ResultType)
	}
	return data.Result, nil
}

// labelValues answers Grafana's label_values(selector, label) as Grafana asks it.
func (p promAPI) labelValues(ctx context.Context, selector, label string) ([]string, error) {
	var vs []string
	err := p.get(ctx, "/api/v1/label/"+label+"/values", url.Values{"match[]": {selector}}, &vs)
	return vs, err
}

// startPrometheus starts a real Prometheus scraping targets every second, with native
// histograms on or off, its storage in a temporary directory, and waits until it is ready.
// It stops when the test ends.
func startPrometheus(t *testing.T, bin string, targets []string, native bool) promAPI {
	t.Helper()
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, a := range targets {
		quoted[i] = strconv.Quote(a)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fleetsim
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	args := []string{"--config.file=" + confPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr}
	name := "Prometheus with classic histograms only"
	if native {
		args = append(args, "--enable-feature=native-histograms")
		name = "Prometheus with native histograms"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s: log (last 4 KiB):\n%s", name, b[max(0, len(b)-4096):])
		}
	})

	p := promAPI{base: "http://" + addr, name: name}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start (see its log below)")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after 30s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape fetches a metrics page as Prometheus's text format.
func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return b
			}
			err = fmt.Errorf("%s %v", resp.Status, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// grafanaRegex is how Grafana writes a multi-value variable into a regex matcher: each
// value escaped, joined in a group, and the whole escaped for a PromQL string.
func grafanaRegex(values ...string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return strings.ReplaceAll("("+strings.Join(quoted, "|")+")", `\`, `\\`)
}

func TestDashboardAgainstPrometheus(t *testing.T) {
	promBin := testbroker.RequireTool(t, "prometheus")
	promtool := testbroker.RequireTool(t, "promtool")
	d, _ := readDashboard(t)
	dir := t.TempDir()

	// Two fleetsim processes, each with its embedded broker and its metrics on loopback.
	var scenarios, instances []string
	for _, name := range slices.Sorted(maps.Keys(proofScenarios)) {
		file := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(file, []byte(proofScenarios[name]), 0o600); err != nil {
			t.Fatal(err)
		}
		listen := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
		metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
		// The duration only bounds a run the test forgets to stop; the test stops it.
		start(t, nil, "run", file, "--listen", listen, "--metrics-addr", metricsAddr, "--quiet", "--duration", "5m")
		scenarios, instances = append(scenarios, name), append(instances, metricsAddr)
	}

	// promtool lints what each process serves, as Prometheus will read it.
	for _, addr := range instances {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(scrape(t, addr))
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on a scrape of %s: %v\n%s", addr, err, out)
		}
	}

	// The Prometheus the dashboard is made for, native histograms on, and one that stores
	// only the classic buckets (any Prometheus before native histograms, or one that does
	// not turn them on): each quantile panel reads either.
	proms := []promAPI{startPrometheus(t, promBin, instances, true), startPrometheus(t, promBin, instances, false)}
	ctx := context.Background()

	// Both targets up before any panel is asked.
	deadline := time.Now().Add(30 * time.Second)
	for _, prom := range proms {
		for {
			up, err := prom.query(ctx, `up{job="fleetsim"} == 1`)
			if err != nil {
				t.Fatal(err)
			}
			if len(up) == len(instances) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s, %s scrapes %d of %d fleetsim targets", prom.name, len(up), len(instances))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// Grafana's variables, as Grafana fills them: every scenario and every instance
	// selected (a regex of both), and $__rate_interval from the 1 s scrape interval
	// (four scrapes).
	fill := strings.NewReplacer(
		"${scenario}", grafanaRegex(scenarios...), "$scenario", grafanaRegex(scenarios...),
		"${instance}", grafanaRegex(instances...), "$instance", grafanaRegex(instances...),
		"${__rate_interval}", "4s", "$__rate_interval", "4s",
	)

	// The variables list what Grafana would offer: both scenarios, then both instances.
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(variableQuery(v))
		if m == nil {
			continue // TestDashboardQueriesServedMetrics says so
		}
		want := slices.Sorted(slices.Values(map[string][]string{"scenario": scenarios, "instance": instances}[m[2]]))
		got, err := proms[0].labelValues(ctx, fill.Replace(m[1]), m[2])
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
		} else if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("variable %s offers %v, want %v", v.Name, got, want)
		}
	}

	// Every panel's every query: accepted, and with data, asked again each second until
	// all have answered or the time is up (the runs need a few seconds for every rate).
	type pending struct {
		prom        promAPI
		where, expr string
		quantiles   bool   // must hold a number, not NaN from a window without observations
		panel       string // the panel's title
	}
	var todo []pending
	for _, prom := range proms {
		for _, p := range allPanels(d.Panels) {
			for _, q := range p.Targets {
				todo = append(todo, pending{prom: prom, where: fmt.Sprintf("%s: panel %d %q %s", prom.name, p.ID, p.Title, q.RefID),
					expr: fill.Replace(q.Expr), quantiles: strings.Contains(q.Expr, "histogram_quantile"), panel: p.Title})
			}
		}
	}
	last := map[string]string{}
	deadline = time.Now().Add(90 * time.Second)
	for len(todo) > 0 && time.Now().Before(deadline) {
		todo = slices.DeleteFunc(todo, func(q pending) bool {
			res, err := q.prom.query(ctx, q.expr)
			if _, rejected := err.(errRejected); rejected {
				t.Errorf("%s: %v\n%s", q.where, err, q.expr)
				return true
			}
			if err != nil {
				last[q.where] = err.Error()
				return false
			}
			if !q.quantiles && len(res) > 0 || slices.ContainsFunc(res, func(r promResult) bool { return !math.IsNaN(r.float()) }) {
				return true
			}
			last[q.where] = fmt.Sprintf("%d series: %v", len(res), res)
			return false
		})
		if len(todo) > 0 {
			time.Sleep(time.Second)
		}
	}
	for _, q := range todo {
		cond := ""
		if when, ok := runDependent[q.panel]; ok {
			cond = fmt.Sprintf(" (it has data %s: do the test's runs still have that?)", when)
		}
		t.Errorf("%s: no data from two fleetsim runs%s; last answer: %s\n%s", q.where, cond, last[q.where], q.expr)
	}

	// Quantile panels aggregate both instances: the histograms a quantile is taken of are
	// summed across instances (not grouped by instance), and both instances feed them.
	type quantileInput struct {
		prom  promAPI
		where string
		exprs []string // count by (instance) of each quantile's summed histograms
	}
	var inputs []quantileInput
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			where := fmt.Sprintf("panel %d %q %s", p.ID, p.Title, q.RefID)
			expr, err := promqlParser.ParseExpr(fill.Replace(q.Expr))
			if err != nil {
				continue // reported above
			}
			in := quantileInput{where: where}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				c, ok := n.(*parser.Call)
				if !ok || c.Func.Name != "histogram_quantile" {
					return nil
				}
				arg := c.Args[1]
				for {
					pe, ok := arg.(*parser.ParenExpr)
					if !ok {
						break
					}
					arg = pe.Expr
				}
				agg, ok := arg.(*parser.AggregateExpr)
				if !ok || agg.Op != parser.SUM || agg.Without || slices.Contains(agg.Grouping, "instance") {
					t.Errorf("%s: histogram_quantile of %s, want the sum across instances (sum by (...) without instance)", where, arg)
					return nil
				}
				in.exprs = append(in.exprs, fmt.Sprintf("count by (instance) (%s)", agg.Expr))
				return nil
			})
			for _, prom := range proms {
				if len(in.exprs) > 0 {
					inputs = append(inputs, quantileInput{prom: prom, where: prom.name + ": " + where, exprs: in.exprs})
				}
			}
		}
	}
	if len(inputs) < 4*len(proms) {
		t.Errorf("only %d quantile queries: did the quantile panels go missing?", len(inputs))
	}
	// Asked again each second until both instances show, as a scrape may come late.
	fed := map[string]map[string]bool{}
	deadline = time.Now().Add(30 * time.Second)
	for len(inputs) > 0 && time.Now().Before(deadline) {
		inputs = slices.DeleteFunc(inputs, func(in quantileInput) bool {
			if fed[in.where] == nil {
				fed[in.where] = map[string]bool{}
			}
			for _, e := range in.exprs {
				res, err := in.prom.query(ctx, e)
				if err != nil {
					t.Errorf("%s: %v", in.where, err)
					return true
				}
				for _, r := range res {
					fed[in.where][r.Metric["instance"]] = true
				}
			}
			return !slices.ContainsFunc(instances, func(inst string) bool { return !fed[in.where][inst] })
		})
		if len(inputs) > 0 {
			time.Sleep(time.Second)
		}
	}
	for _, in := range inputs {
		t.Errorf("%s: the quantile's histograms come from %v, want both instances %v", in.where, fed[in.where], instances)
	}
}
