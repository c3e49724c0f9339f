package annotate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/annotate"
)

const token = "glsa_test-token-0123456789abcdef"

// request is what the fake Grafana saw of one request.
type request struct {
	method, path, auth, contentType string
	body                            map[string]any
}

// fakeGrafana records requests and answers each with answer (201 with an id by default).
type fakeGrafana struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []request
	answer func(w http.ResponseWriter, r *http.Request)
}

func newFakeGrafana(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *fakeGrafana {
	t.Helper()
	g := &fakeGrafana{answer: answer}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
		if err := json.Unmarshal(b, &req.body); err != nil {
			t.Errorf("request body %q: %v", b, err)
		}
		g.mu.Lock()
		g.seen = append(g.seen, req)
		g.mu.Unlock()
		if g.answer != nil {
			g.answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, `{"id": 1, "message": "Annotation added"}`)
	}))
	return g
}

func (g *fakeGrafana) requests() []request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

// warnings collects what a client warns of.
type warnings struct {
	mu   sync.Mutex
	errs []string
}

func (w *warnings) add(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err.Error())
	w.mu.Unlock()
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

func closeWithin(t *testing.T, c *annotate.Client, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Close(ctx)
}

func TestPostShape(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := newFakeGrafana(t, nil)
	defer g.Close()
	var w warnings
	// A Grafana behind a proxy's sub-path: the API path goes under it.
	c, err := annotate.New(annotate.Options{URL: g.URL + "/grafana/", Token: token, Tags: []string{"fleetsim", "demo"}, Warn: w.add})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_123)
	c.Post(annotate.Annotation{Time: at, Tags: []string{"start"}, Text: "started"})
	c.Post(annotate.Annotation{Time: at, End: at.Add(90 * time.Second), Tags: []string{"end", "passed"}, Text: "ended"})
	if err := closeWithin(t, c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	reqs := g.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.method != http.MethodPost || r.path != "/grafana/api/annotations" || r.auth != "Bearer "+token || r.contentType != "application/json" {
			t.Errorf("request %d: %s %s, Authorization %q, Content-Type %q; want POST /grafana/api/annotations with the bearer token, JSON",
				i, r.method, r.path, r.auth, r.contentType)
		}
	}
	want := []map[string]any{
		{"time": float64(at.UnixMilli()), "tags": []any{"fleetsim", "demo", "start"}, "text": "started"},
		{"time": float64(at.UnixMilli()), "timeEnd": float64(at.Add(90 * time.Second).UnixMilli()), "tags": []any{"fleetsim", "demo", "end", "passed"}, "text": "ended"},
	}
	for i := range want {
		if got, _ := json.Marshal(reqs[i].body); string(got) != mustJSON(want[i]) {
			t.Errorf("request %d body %s, want %s", i, got, mustJSON(want[i]))
		}
	}
	if ws := w.all(); len(ws) > 0 {
		t.Errorf("warnings from a Grafana that took everything: %q", ws)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestNoTokenNoAuthorization(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := newFakeGrafana(t, nil)
	defer g.Close()
	c, err := annotate.New(annotate.Options{URL: g.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(annotate.Annotation{Time: time.Now(), Text: "x"})
	if err := closeWithin(t, c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if r := g.requests(); len(r) != 1 || r[0].auth != "" || r[0].path != "/api/annotations" {
		t.Errorf("requests %+v: want one to /api/annotations without Authorization", r)
	}
}

// A Grafana that refuses is a warning with its reason, and the token is in no warning even
// when Grafana echoes it.
func TestRefusedIsAWarningWithoutTheToken(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := newFakeGrafana(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"message": "invalid API key: %s"}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	})
	defer g.Close()
	var w warnings
	c, err := annotate.New(annotate.Options{URL: g.URL, Token: token, Warn: w.add})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(annotate.Annotation{Time: time.Now(), Text: "run started"})
	if err := closeWithin(t, c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ws := w.all()
	if len(ws) != 1 || !strings.Contains(ws[0], "401") || !strings.Contains(ws[0], "invalid API key") || !strings.Contains(ws[0], "run started") {
		t.Errorf("warnings %q: want one naming the annotation, the 401 and Grafana's message", ws)
	}
	for _, s := range ws {
		if strings.Contains(s, token) {
			t.Errorf("a warning holds the token: %q", s)
		}
	}
}

// A Grafana that hangs never holds up Post, costs each request at most the timeout, and
// Close gives up after its context's deadline.
func TestHangingGrafanaBlocksNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	release := make(chan struct{})
	g := newFakeGrafana(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer g.Close()
	defer close(release) // before g.Close, which waits for handlers
	var w warnings
	// The request timeout outlasts the posting loop, so one request is in flight throughout.
	c, err := annotate.New(annotate.Options{URL: g.URL, Token: token, Timeout: 3 * time.Second, Queue: 2, Warn: w.add})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(annotate.Annotation{Time: time.Now(), Text: "mark 0"})
	for deadline := time.Now().Add(5 * time.Second); len(g.requests()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first mark never reached Grafana")
		}
	}
	t0 := time.Now()
	for i := 1; i < 10; i++ {
		c.Post(annotate.Annotation{Time: time.Now(), Text: fmt.Sprintf("mark %d", i)})
	}
	// Generous for a loaded machine: nine Posts are nine channel sends, not nine requests.
	if d := time.Since(t0); d > time.Second {
		t.Errorf("9 posts to a hanging Grafana took %v", d)
	}
	t0 = time.Now()
	err = closeWithin(t, c, 300*time.Millisecond)
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	if err == nil {
		t.Errorf("Close returned no error, but gave up on a hanging Grafana")
	}
	ws := w.all()
	dropped, timedOut := 0, 0
	for _, s := range ws {
		switch {
		case strings.Contains(s, "already waiting"):
			dropped++
		case strings.Contains(s, "had not answered"), strings.Contains(s, "gave up waiting"):
			timedOut++
		}
		if strings.Contains(s, token) {
			t.Errorf("a warning holds the token: %q", s)
		}
	}
	// Of 10 marks, 1 in flight and 2 queued: the rest were dropped at Post, and the ones
	// taken were warned of when Close cut them short.
	if dropped != 7 || timedOut != 3 {
		t.Errorf("%d dropped and %d timed out of 10 (warnings %q)", dropped, timedOut, ws)
	}
	c.Post(annotate.Annotation{Time: time.Now(), Text: "late"}) // after Close: a warning, no panic
	if ws := w.all(); !strings.Contains(ws[len(ws)-1], "closed") {
		t.Errorf("a post after Close: warnings end with %q, want one saying the client is closed", ws[len(ws)-1])
	}
}

func TestUnreachableGrafanaIsAWarning(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := newFakeGrafana(t, nil)
	url := g.URL
	g.Close() // nothing listens there any more
	var w warnings
	c, err := annotate.New(annotate.Options{URL: url, Token: token, Timeout: 2 * time.Second, Warn: w.add})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(annotate.Annotation{Time: time.Now(), Text: "x"})
	if err := closeWithin(t, c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ws := w.all(); len(ws) != 1 || strings.Contains(ws[0], token) {
		t.Errorf("warnings %q: want one, without the token", ws)
	}
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{"", "grafana:3000", "ftp://grafana:3000", "http://", "http://admin:hunter2@grafana:3000",
		"http://grafana:3000/?token=x", "http://[::1"} {
		c, err := annotate.New(annotate.Options{URL: u})
		if err == nil {
			c.Close(context.Background())
			t.Errorf("New(%q): no error", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q): the error shows the password: %v", u, err)
		}
	}
}

// A client posts a run's start to Grafana; Close waits until it is sent.
func ExampleClient() {
	grafana := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Println(r.Method, r.URL.Path, r.Header.Get("Authorization") != "")
		fmt.Println(string(b))
	}))
	defer grafana.Close()

	c, err := annotate.New(annotate.Options{URL: grafana.URL, Token: "a-service-account-token", Tags: []string{"fleetsim"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Post(annotate.Annotation{Time: time.UnixMilli(1_700_000_000_000), Tags: []string{"start"}, Text: "smart-home started"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
	// Output:
	// POST /api/annotations true
	// {"time":1700000000000,"tags":["fleetsim","start"],"text":"smart-home started"}
}
