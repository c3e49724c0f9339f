package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// grafanaToken is the token the annotation tests give fleetsim; it must show nowhere.
const grafanaToken = "glsa_fleetsim-e2e-Zq8tK2mV9xR4"

// annotationRequest is what a fake Grafana saw of one POST /api/annotations.
type annotationRequest struct {
	Method, Path, Auth string
	Body               struct {
		Time    int64    `json:"time"`
		TimeEnd int64    `json:"timeEnd"`
		Tags    []string `json:"tags"`
		Text    string   `json:"text"`
	}
	raw []byte
}

// fakeGrafana records annotation requests; hang makes it answer none until the test ends.
func fakeGrafana(t *testing.T, hang bool) (url string, seen func() []annotationRequest) {
	t.Helper()
	var mu sync.Mutex
	var reqs []annotationRequest
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a annotationRequest
		a.Method, a.Path, a.Auth = r.Method, r.URL.Path, r.Header.Get("Authorization")
		a.raw, _ = io.ReadAll(r.Body)
		if err := json.Unmarshal(a.raw, &a.Body); err != nil {
			t.Errorf("annotation body %q: %v", a.raw, err)
		}
		mu.Lock()
		reqs = append(reqs, a)
		mu.Unlock()
		if hang {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id": 1, "message": "Annotation added"}`)
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL, func() []annotationRequest {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
}

// noToken fails the test if the token shows in any of what a run wrote.
func noToken(t *testing.T, where map[string]string) {
	t.Helper()
	for name, s := range where {
		if strings.Contains(s, grafanaToken) {
			t.Errorf("the Grafana token appears in %s", name)
		}
	}
}

// TestGrafanaAnnotations runs the binary with --grafana-url against a fake Grafana: it marks
// the start, each crossed threshold and the end with the verdict, as POST /api/annotations
// with the bearer token from the environment, and the token appears in no output.
func TestGrafanaAnnotations(t *testing.T) {
	url, seen := fakeGrafana(t, false)
	report := filepath.Join(t.TempDir(), "report.json")
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	t0 := time.Now()
	p := start(t, []string{grafanaTokenEnv + "=" + grafanaToken}, "run", "scenarios/temperature.yaml", "--listen", addr,
		"--metrics-addr", "off", "--duration", "2s", "--grafana-url", url+"/",
		"--threshold", "loss==0", "--threshold", "throughput>1000000", "--report", report)
	if code := p.wait(t, 60*time.Second); code != exitThresholds {
		t.Errorf("exit code %d, want %d (a threshold crossed)", code, exitThresholds)
	}
	t1 := time.Now()

	reqs := seen()
	var events []string
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/api/annotations" || r.Auth != "Bearer "+grafanaToken {
			t.Errorf("request %s %s with Authorization %q: want POST /api/annotations with the bearer token", r.Method, r.Path, r.Auth)
		}
		if at := time.UnixMilli(r.Body.Time); at.Before(t0.Add(-time.Second)) || at.After(t1.Add(time.Second)) {
			t.Errorf("annotation %q at %v, not during the run (%v to %v): time must be in milliseconds", r.Body.Text, at, t0, t1)
		}
		if len(r.Body.Tags) < 3 || r.Body.Tags[0] != "fleetsim" || r.Body.Tags[1] != "temperature" {
			t.Errorf("annotation %q tags %q: want fleetsim, the scenario, then what it marks", r.Body.Text, r.Body.Tags)
			continue
		}
		events = append(events, r.Body.Tags[2])
	}
	if !slices.Equal(events, []string{"start", "threshold", "end"}) {
		t.Fatalf("annotations %q, want start, threshold, end (requests %+v)", events, reqs)
	}
	if txt := reqs[0].Body.Text; !strings.Contains(txt, "temperature started") {
		t.Errorf("start annotation %q: want the scenario's name and that it started", txt)
	}
	if txt := reqs[1].Body.Text; !strings.Contains(txt, "throughput") {
		t.Errorf("threshold annotation %q: want the crossed threshold", txt)
	}
	end := reqs[2].Body
	if !slices.Contains(end.Tags, "thresholds-crossed") || !strings.HasPrefix(end.Text, "fleetsim: thresholds-crossed") {
		t.Errorf("end annotation %q tagged %q: want the verdict as a tag and the summary's headline", end.Text, end.Tags)
	}
	if !strings.Contains(p.stdout.String(), strings.SplitN(end.Text, "\n", 2)[0]) {
		t.Errorf("end annotation %q: not the headline the summary printed", end.Text)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	noToken(t, map[string]string{"stdout": p.stdout.String(), "stderr": p.stderr.String(), "the report": string(b),
		"the command line": strings.Join(p.cmd.Args, " ")})
	if strings.Contains(p.stderr.String(), "warning: grafana") {
		t.Errorf("warnings from a Grafana that took everything:\n%s", p.stderr)
	}

	// The dashboard shows them: an enabled annotation query by tags that every mark carries.
	_, raw := readDashboard(t)
	var d struct {
		Annotations struct {
			List []annotationQuery `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(d.Annotations.List, func(q annotationQuery) bool { return q.shows(reqs) }) {
		t.Errorf("dashboards/fleetsim.json has no enabled annotation query by tags that matches every mark fleetsim posts")
	}
}

// annotationQuery is a dashboard's annotation query, as far as tags go.
type annotationQuery struct {
	Enable bool `json:"enable"`
	Target struct {
		Type string   `json:"type"`
		Tags []string `json:"tags"`
	} `json:"target"`
}

// shows reports whether the query, enabled and by tags, matches every one of the marks.
func (q annotationQuery) shows(marks []annotationRequest) bool {
	if !q.Enable || q.Target.Type != "tags" || len(q.Target.Tags) == 0 {
		return false
	}
	for _, m := range marks {
		for _, tag := range q.Target.Tags {
			if !slices.Contains(m.Body.Tags, tag) {
				return false
			}
		}
	}
	return true
}

// TestGrafanaAnnotationsNeverHoldUpARun: a Grafana that never answers, or that is not
// there, is a warning on stderr; the run passes, its summary is printed, and fleetsim exits
// a bounded time after the run.
func TestGrafanaAnnotationsNeverHoldUpARun(t *testing.T) {
	hanging, _ := fakeGrafana(t, true)
	gone := fmt.Sprintf("http://127.0.0.1:%d", testbroker.FreePort(t))
	for name, url := range map[string]string{"hanging": hanging, "unreachable": gone} {
		t.Run(name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
			t0 := time.Now()
			p := start(t, []string{grafanaTokenEnv + "=" + grafanaToken}, "run", "scenarios/temperature.yaml", "--listen", addr,
				"--metrics-addr", "off", "--duration", "1s", "--grafana-url", url)
			// 1 s of run, the grace period's drain, and at most closeAnnotationsWithin for
			// Grafana; the rest is margin for a loaded machine.
			if code := p.wait(t, 60*time.Second); code != 0 {
				t.Errorf("exit code %d, want 0: Grafana's trouble is not the run's", code)
			}
			if d := time.Since(t0); d > 1*time.Second+closeAnnotationsWithin+20*time.Second {
				t.Errorf("fleetsim took %v", d)
			}
			if !strings.Contains(p.stdout.String(), "fleetsim: passed") {
				t.Errorf("no summary on stdout:\n%s", p.stdout)
			}
			if !strings.Contains(p.stderr.String(), "fleetsim: warning: grafana: ") {
				t.Errorf("no warning about Grafana on stderr:\n%s", p.stderr)
			}
			noToken(t, map[string]string{"stdout": p.stdout.String(), "stderr": p.stderr.String()})
		})
	}
}

// TestGrafanaURLMustBeAURL: a --grafana-url fleetsim cannot post to is a usage error (exit
// code 2) that shows no credentials.
func TestGrafanaURLMustBeAURL(t *testing.T) {
	for _, url := range []string{"grafana:3000", "http://admin:hunter2@127.0.0.1:3000"} {
		p := start(t, nil, "run", "scenarios/temperature.yaml", "--listen", fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t)),
			"--metrics-addr", "off", "--duration", "1s", "--grafana-url", url)
		if code := p.wait(t, 30*time.Second); code != 2 {
			t.Errorf("--grafana-url %s: exit code %d, want 2", url, code)
		}
		if !strings.Contains(p.stderr.String(), "--grafana-url") || strings.Contains(p.stderr.String(), "hunter2") {
			t.Errorf("--grafana-url %s: stderr %q: want a usage error naming the flag, without the password", url, p.stderr)
		}
	}
}
