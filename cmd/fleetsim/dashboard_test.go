package main

// The dashboard tests keep dashboards/ honest: every panel of the Grafana dashboard queries
// metrics that fleetsim really serves, by the labels they really carry, and the Prometheus
// and Grafana provisioning files point at this binary's metrics address and at the dashboard.
// The metrics come from a real run: the binary's own registry (newRegistry), the embedded
// broker, and a second of load over a shaped link, so renaming a metric or a label without
// updating the dashboard fails here. Queries are parsed with Prometheus's own grammar, and
// the dashboard is read strictly with Grafana's schema types. prometheus_test.go then asks
// a real Prometheus every query.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

const dashboardsDir = "../../dashboards"

// dsVar is the dashboard's datasource variable; every panel and query names it, so the
// dashboard imports into any Grafana whatever its Prometheus datasource is called.
const dsVar = "${DS_PROMETHEUS}"

// dsRef is a Grafana datasource reference.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type grafanaPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *dsRef          `json:"datasource"`
	Targets     []grafanaTarget `json:"targets"`
	Panels      []grafanaPanel  `json:"panels"` // a collapsed row's panels
	GridPos     *struct{ H, W, X, Y int }
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dsRef          `json:"datasource"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."} for Prometheus
	Definition string          `json:"definition"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) (*grafanaDashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dashboardsDir, "fleetsim.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboards/fleetsim.json: %v", err)
	}
	return &d, raw
}

// allPanels returns the dashboard's panels, rows' nested panels included.
func allPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// variableQuery is the query of a query variable, in either of Grafana's forms.
func variableQuery(v grafanaVariable) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil && s != "" {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil && o.Query != "" {
		return o.Query
	}
	return v.Definition
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func TestDashboardPanels(t *testing.T) {
	d, raw := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and schemaVersion ≥ 36", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["DS_PROMETHEUS"]; !ok || v.Type != "datasource" || variableQuery(v) != "prometheus" {
		t.Errorf("want a datasource variable DS_PROMETHEUS of type prometheus, got %+v", v)
	}
	if v, ok := vars["scenario"]; !ok || v.Type != "query" || !strings.Contains(variableQuery(v), ", scenario)") {
		t.Errorf("want a query variable scenario from label_values(..., scenario), got %+v", v)
	}

	// No datasource is named by uid: the whole document refers to the variable only (or to
	// Grafana's own for the built-in annotations).
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			for k, v := range n {
				if ds, ok := v.(map[string]any); ok && k == "datasource" {
					if uid := ds["uid"]; uid != dsVar && uid != "-- Grafana --" {
						t.Errorf("a datasource refers to uid %v, want %s", uid, dsVar)
					}
				}
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	walk(doc)

	ids := map[int]bool{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v is not a place on a 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			if p.Title == "" {
				t.Errorf("row %d has no title", p.ID)
			}
			continue
		}
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.Title == "" || p.Description == "" {
			t.Errorf("%s: want a title and a description", where)
		}
		if p.Datasource == nil || *p.Datasource != (dsRef{"prometheus", dsVar}) {
			t.Errorf("%s: datasource %+v, want {prometheus %s}", where, p.Datasource, dsVar)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("%s: no unit", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("%s: target %q has no expression, or no or a repeated refId", where, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource != nil && *q.Datasource != (dsRef{"prometheus", dsVar}) {
				t.Errorf("%s: target %s datasource %+v, want {prometheus %s}", where, q.RefID, q.Datasource, dsVar)
			}
			for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(q.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
					t.Errorf("%s: %s uses $%s, which the dashboard does not define", where, q.RefID, m[1])
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries: did the panels go missing?", queries)
	}
}

// family is what the test knows of a gathered metric family.
type family struct {
	typ            string // COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED
	labels         map[string]bool
	native         bool // a histogram with native buckets (queried by its bare name)
	classicBuckets bool // a histogram with classic buckets (queried as name_bucket)
}

// gatherRun runs a second of load on the embedded broker, with the registry the binary
// serves, and returns what the registry then gathers: a measured stream at QoS 0 and one at
// QoS 1 over a shaped link, a sink receiving both, and a bulb for device states.
func gatherRun(t *testing.T) map[string]family {
	t.Helper()
	const doc = `name: dashboard
duration: 1s
connections: per-device
devices:
  - kind: load
    name: meter0
    qos: 0
    max_rate: 100
    link: lan
    topic: "{prefix}/meter0"
    params: {payload_bytes: 64, rate: 50}
  - kind: load
    name: meter1
    qos: 1
    max_rate: 100
    link: lan
    topic: "{prefix}/meter1"
    params: {payload_bytes: 64, rate: 50}
  - kind: sink
    name: backend
    qos: 1
  - kind: bulb
    qos: 1
`
	s, err := scenario.Parse("dashboard.yaml", []byte(doc), devices.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	reg, m := newRegistry(s.Name)
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	metrics.RegisterBroker(reg, embeddedStats{b}) // as runCommand does for the embedded broker
	// The run is here for the metrics it serves, not its verdict: a busy machine may make
	// the generator the limit (schedule lag p99 169 ms was seen beside the race tests).
	if _, err := runner.Run(context.Background(), runner.Config{Scenario: s, Kinds: devices.Kinds(), Metrics: m,
		Conn: mqttconn.Options{Broker: b.URL(), ConnectTimeout: 5 * time.Second}, AllowGeneratorLimit: true}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]family{}
	for _, mf := range mfs {
		f := family{typ: mf.GetType().String(), labels: map[string]bool{}}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				f.labels[l.GetName()] = true
			}
			if h := m.GetHistogram(); h != nil {
				f.native = f.native || h.Schema != nil
				f.classicBuckets = f.classicBuckets || len(h.GetBucket()) > 0
			}
		}
		if f.classicBuckets {
			f.labels["le"] = true
		}
		if f.typ == "SUMMARY" {
			f.labels["quantile"] = true
		}
		fams[mf.GetName()] = f
	}
	return fams
}

// resolve finds the family a series name of a query belongs to, the way Prometheus stores
// it: a counter's name already ends in _total as gathered; a native histogram is stored
// under its bare name and has no _bucket series; classic buckets are name_bucket; both
// kinds of histogram (and summaries) have name_sum and name_count.
func resolve(name string, fams map[string]family) (family, error) {
	if f, ok := fams[name]; ok {
		if f.typ == "HISTOGRAM" && !f.native {
			return f, fmt.Errorf("%s is a classic histogram only: query %s_bucket", name, name)
		}
		return f, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := fams[base]
		switch {
		case !ok:
		case suffix == "_bucket" && f.typ == "HISTOGRAM" && !f.classicBuckets:
			return f, fmt.Errorf("%s has no classic buckets: query %s", base, base)
		case suffix == "_bucket" && f.typ == "HISTOGRAM", suffix != "_bucket" && (f.typ == "HISTOGRAM" || f.typ == "SUMMARY"):
			return f, nil
		}
	}
	return family{}, fmt.Errorf("fleetsim serves no metric %s", name)
}

func TestDashboardQueriesServedMetrics(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d, _ := readDashboard(t)
	fams := gatherRun(t)
	// instance and job are the labels Prometheus adds to every scraped series.
	targetLabels := map[string]bool{"instance": true, "job": true}

	check := func(where, expr string, panel bool) {
		t.Helper()
		q, err := parsePromQL(expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
			return
		}
		if len(q.selectors) == 0 {
			t.Errorf("%s: no metric in %s", where, expr)
		}
		var found []family
		bare := map[string]bool{} // native histograms read by their bare name
		classic := map[string]bool{}
		for _, s := range q.selectors {
			f, err := resolve(s.metric, fams)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			found = append(found, f)
			if f.typ == "HISTOGRAM" {
				if _, ok := fams[s.metric]; ok {
					bare[s.metric] = true
				} else {
					classic[s.metric[:strings.LastIndex(s.metric, "_")]] = true
				}
			}
			// The dashboard's variables filter every series: fleetsim's own by scenario
			// and instance, the process's and the embedded broker's by instance.
			if panel && f.labels["scenario"] && !strings.Contains(s.matchers["scenario"], "$scenario") {
				t.Errorf("%s: %s is not filtered by $scenario", where, s.metric)
			}
			if panel && !strings.Contains(s.matchers["instance"], "$instance") {
				t.Errorf("%s: %s is not filtered by $instance", where, s.metric)
			}
		}
		// A Prometheus that does not ingest native histograms stores only the classic
		// series, so a query reading a native histogram carries the classic form beside it.
		for m := range bare {
			if !classic[m] {
				t.Errorf("%s: %s is read as a native histogram only; add the %s_bucket form (or ... or ...)", where, m, m)
			}
		}
		for _, l := range q.labels {
			if targetLabels[l] || slices.ContainsFunc(found, func(f family) bool { return f.labels[l] }) {
				continue
			}
			if len(found) > 0 {
				t.Errorf("%s: label %q is on none of the metrics of %s", where, l, expr)
			}
		}
	}

	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(variableQuery(v))
		if m == nil {
			t.Errorf("variable %s: want label_values(selector, label), got %q", v.Name, variableQuery(v))
			continue
		}
		check("variable "+v.Name, fmt.Sprintf("group by (%s) (%s)", m[2], m[1]), false)
	}
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			check(fmt.Sprintf("panel %q %s", p.Title, q.RefID), q.Expr, true)
		}
	}
}

// promql is what one PromQL expression refers to.
type promql struct {
	selectors []selector
	labels    []string // label names in matchers and in by/without/on/ignoring/group_x lists
}

type selector struct {
	metric   string
	matchers map[string]string // label → value, whatever the operator
}

// grafanaIntervals replaces Grafana's interval variables, which are not PromQL, by
// durations of the kind Grafana puts in their place: with the datasource's 5 s scrape
// interval (provisioning/datasources/prometheus.yml), $__rate_interval is at least 20 s.
var grafanaIntervals = strings.NewReplacer(
	"${__rate_interval}", "20s", "$__rate_interval", "20s",
	"${__interval}", "5s", "$__interval", "5s",
	"${__range}", "15m", "$__range", "15m")

// promqlParser is Prometheus's own PromQL grammar (promql/parser), with its defaults: a
// query the dashboard ships must parse as Prometheus parses it, not as a test thinks it does.
var promqlParser = parser.NewParser(parser.Options{})

// parsePromQL parses a dashboard query with the real grammar, Grafana's interval variables
// filled in (the other variables stand in label values, where any string parses), and
// returns the series selectors and label names it uses.
func parsePromQL(expr string) (promql, error) {
	e, err := promqlParser.ParseExpr(grafanaIntervals.Replace(expr))
	if err != nil {
		return promql{}, fmt.Errorf("promql: %w", err)
	}
	return promqlRefs(e), nil
}

// promqlRefs walks a parsed expression for the series it selects, in the order they
// appear, and the label names it matches on, groups by or joins on.
func promqlRefs(e parser.Expr) promql {
	var q promql
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			s := selector{metric: n.Name, matchers: map[string]string{}}
			for _, m := range n.LabelMatchers {
				if m.Name == labels.MetricName {
					if m.Type == labels.MatchEqual {
						s.metric = m.Value
					}
					continue
				}
				q.labels = append(q.labels, m.Name)
				s.matchers[m.Name] = m.Value
			}
			q.selectors = append(q.selectors, s)
		case *parser.AggregateExpr:
			q.labels = append(q.labels, n.Grouping...)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				q.labels = append(q.labels, vm.MatchingLabels...)
				q.labels = append(q.labels, vm.Include...)
			}
		}
		return nil
	})
	return q
}

func TestPromQLRefs(t *testing.T) {
	for _, c := range []struct {
		expr            string
		metrics, labels []string
		err             bool
	}{
		{expr: `histogram_quantile(0.99, sum by (kind) (rate(fleetsim_message_latency_seconds{scenario=~"$scenario"}[$__rate_interval])))` +
			` or histogram_quantile(0.99, sum by (kind, le) (rate(fleetsim_message_latency_seconds_bucket[5m])))`,
			metrics: []string{"fleetsim_message_latency_seconds", "fleetsim_message_latency_seconds_bucket"},
			labels:  []string{"kind", "kind", "le", "scenario"}},
		{expr: `sum without(qos) (a_total{x="}",y!~'a\'b'}) / on (kind) group_left(state) b offset 5m > bool 0.5e-3`,
			metrics: []string{"a_total", "b"}, labels: []string{"kind", "qos", "state", "x", "y"}},
		{expr: `{__name__="c", k="v"} * 2`, metrics: []string{"c"}, labels: []string{"k"}},
		{expr: `rat(x[1m])`, err: true}, // a misspelt function must not pass as a metric
		{expr: `x{k}`, err: true},
		{expr: `sum by kind (x)`, err: true},
		{expr: `rate(x[$__rate_interval]) and`, err: true},
		{expr: `histogram_quantile(0.5, x) + "s"`, err: true}, // types are checked too
	} {
		q, err := parsePromQL(c.expr)
		if (err != nil) != c.err {
			t.Errorf("%s: err = %v, want error %v", c.expr, err, c.err)
			continue
		}
		var metrics []string
		for _, s := range q.selectors {
			metrics = append(metrics, s.metric)
		}
		slices.Sort(q.labels) // in the order of the syntax tree's walk, which is not the text's
		if !c.err && (!slices.Equal(metrics, c.metrics) || !slices.Equal(q.labels, c.labels)) {
			t.Errorf("%s:\nmetrics %v, want %v\nlabels %v, want %v", c.expr, metrics, c.metrics, q.labels, c.labels)
		}
	}
}

func TestDashboardProvisioning(t *testing.T) {
	readYAML := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dashboardsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true) // a misspelt key would be ignored by the tools: refuse it here
		if err := dec.Decode(v); err != nil {
			t.Fatalf("dashboards/%s: %v", name, err)
		}
	}

	// Prometheus scrapes fleetsim run's default metrics address every 5 s.
	var prom prometheusConfig
	readYAML("prometheus.yml", &prom)
	f, _, err := parseRunFlags([]string{"x.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	scraped, interval := false, ""
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, f.metricsAddr) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped, interval = true, cmp.Or(sc.ScrapeInterval, prom.Global.ScrapeInterval)
			}
		}
	}
	if !scraped || interval != "5s" {
		t.Errorf("prometheus.yml: want a job scraping %s/metrics every 5s (scraped %v, every %q)", f.metricsAddr, scraped, interval)
	}

	// Grafana's datasource is that Prometheus, and knows its scrape interval (so
	// $__rate_interval covers at least four scrapes).
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, Access, URL string
			IsDefault                    bool `yaml:"isDefault"`
			JSONData                     struct {
				TimeInterval string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML("provisioning/datasources/prometheus.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: apiVersion %d with %d datasources, want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	if d := ds.Datasources[0]; d.Type != "prometheus" || d.JSONData.TimeInterval != interval {
		t.Errorf("datasource %+v: want type prometheus with timeInterval %s", d, interval)
	} else if u, err := url.Parse(d.URL); err != nil || u.Scheme != "http" {
		t.Errorf("datasource url %q: want http://host:port", d.URL)
	} else if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Errorf("datasource url %q: %v", d.URL, err)
	}

	// Grafana's dashboard provider loads dashboards/ — the README sets FLEETSIM_DASHBOARDS.
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type    string
			OrgID                 int  `yaml:"orgId"`
			DisableDeletion       bool `yaml:"disableDeletion"`
			AllowUIUpdates        bool `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int  `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string
				FoldersFromFilesStructure bool `yaml:"foldersFromFilesStructure"`
			}
		} `yaml:"providers"`
	}
	readYAML("provisioning/dashboards/fleetsim.yml", &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers: %+v, want apiVersion 1 and one file provider", prov)
	}
	dir, err := filepath.Abs(dashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	path := os.Expand(prov.Providers[0].Options.Path, func(v string) string {
		if v != "FLEETSIM_DASHBOARDS" {
			t.Errorf("dashboard provider path uses $%s; the README sets only FLEETSIM_DASHBOARDS", v)
		}
		return dir
	})
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "fleetsim.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the dashboard provider's path: %v", err)
	}
	var loaded grafanaDashboard
	d, _ := readDashboard(t)
	if err := json.Unmarshal(b, &loaded); err != nil || loaded.UID != d.UID {
		t.Errorf("the dashboard provider loads %s, which is not the fleetsim dashboard (%v)", path, err)
	}
}

// schemaProblems lists what a strict unmarshal of the Grafana SDK found wrong. The SDK
// returns its list of problems as an error even when the list is empty: that is no error.
func schemaProblems(err error) []string {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		out := make([]string, 0, len(list))
		for _, e := range list {
			out = append(out, e.Error())
		}
		return out
	}
	if err != nil {
		return []string{err.Error()}
	}
	return nil
}

// TestDashboardGrafanaSchema reads the dashboard with Grafana's own schema types (the
// grafana-foundation-sdk, generated from the schemas Grafana publishes for dashboards,
// panels and Prometheus queries), strictly: an unknown or misspelt field, a value of the
// wrong type or a missing required field, from the dashboard down to a panel's options and
// a query, fails here as Grafana's schema would refuse it. Grafana itself cannot be
// installed on these machines; its schema can be read. Then every panel must be a kind the
// SDK knows, with Prometheus queries.
func TestDashboardGrafanaSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins() // panel options and query types by plugin id; idempotent
	_, raw := readDashboard(t)

	var strict dashboard.Dashboard
	for _, p := range schemaProblems(strict.UnmarshalJSONStrict(raw)) {
		t.Errorf("Grafana's dashboard schema: %s", p)
	}

	// The strict check finds what it should: a copy with a mistake of each kind fails.
	for _, c := range []struct {
		what   string
		mutate func(d map[string]any)
	}{
		{"a misspelt query field", func(d map[string]any) { firstPanel(d, "stat")["targets"].([]any)[0].(map[string]any)["exprr"] = "x" }},
		{"a position of the wrong type", func(d map[string]any) { firstPanel(d, "timeseries")["gridPos"].(map[string]any)["w"] = "wide" }},
		{"a stat panel without a required option", func(d map[string]any) { delete(firstPanel(d, "stat")["options"].(map[string]any), "reduceOptions") }},
	} {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		c.mutate(d)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var bad dashboard.Dashboard
		if len(schemaProblems(bad.UnmarshalJSONStrict(b))) == 0 {
			t.Errorf("the schema check let %s through", c.what)
		}
	}

	// The same document decoded into the SDK's types: every panel a known kind with its
	// options typed, every query a Prometheus one.
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("Grafana's dashboard types: %v", err)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Grafana's dashboard types: %v", err)
	}
	seen := 0 // panels and rows
	check := func(p *dashboard.Panel) {
		where := fmt.Sprintf("panel %v %q", deref(p.Id), deref(p.Title))
		if _, ok := cog.NewRuntime().ConfigForPanelcfgVariant(p.Type); !ok {
			t.Errorf("%s: type %q is not a panel plugin Grafana's schema knows", where, p.Type)
		}
		if p.Options == nil || reflect.TypeOf(p.Options).Kind() != reflect.Pointer {
			t.Errorf("%s: options %T, want the %s panel's typed options", where, p.Options, p.Type)
		}
		if p.Datasource == nil || deref(p.Datasource.Type) != "prometheus" {
			t.Errorf("%s: datasource %+v, want a prometheus one", where, p.Datasource)
		}
		for i, q := range p.Targets {
			pq, ok := q.(*prometheus.Dataquery)
			if !ok || pq.Expr == "" || deref(pq.RefId) == "" {
				t.Errorf("%s: target %d is %T, want a Prometheus query with an expression and a refId", where, i, q)
			}
		}
	}
	for _, pr := range d.Panels {
		seen++
		switch {
		case pr.Panel != nil:
			check(pr.Panel)
		case pr.RowPanel != nil:
			for _, p := range pr.RowPanel.Panels {
				seen++
				check(&p)
			}
		default:
			t.Errorf("a panel that is neither a panel nor a row")
		}
	}
	if gd, _ := readDashboard(t); seen != len(allPanels(gd.Panels)) {
		t.Errorf("the SDK saw %d panels and rows, the dashboard has %d", seen, len(allPanels(gd.Panels)))
	}
}

// deref is *p, or the zero value for nil: the SDK's optional fields are pointers.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// firstPanel is the first top-level panel of type typ in a decoded dashboard.
func firstPanel(d map[string]any, typ string) map[string]any {
	for _, p := range d["panels"].([]any) {
		if p := p.(map[string]any); p["type"] == typ {
			return p
		}
	}
	panic("no " + typ + " panel")
}

// prometheusConfig is the part of a Prometheus configuration file the tests read.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName        string `yaml:"job_name"`
		ScrapeInterval string `yaml:"scrape_interval"`
		MetricsPath    string `yaml:"metrics_path"`
		StaticConfigs  []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}
