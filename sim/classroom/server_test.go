package classroom

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/broker"
)

// recordingPublisher is a fake Publisher for the handler's unit tests.
type recordingPublisher struct {
	mu     sync.Mutex
	topics []string
}

func (p *recordingPublisher) Publish(_ context.Context, topic string, _ []byte, _ byte, _ bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topics = append(p.topics, topic)
	return nil
}

func (p *recordingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.topics...)
}

var classUsers = map[string]broker.User{
	"alice": {Password: "s3cret-alice"},
	"teach": {Password: "t0p-teach", Teacher: true},
}

type viewServer struct {
	*httptest.Server
	pub       *recordingPublisher
	unplugged []string
	hub       *Hub
}

func newViewServer(t *testing.T, users map[string]broker.User) *viewServer {
	t.Helper()
	v := &viewServer{pub: &recordingPublisher{}, hub: start(t, Options{})}
	v.Server = httptest.NewServer(NewHandler(ServerOptions{Hub: v.hub, Publisher: v.pub, Users: users,
		Unplug: func(id string) bool { v.unplugged = append(v.unplugged, id); return id == "fleetsim-x-1" }}))
	t.Cleanup(v.Close)
	return v
}

// do sends a request as user (no login when user is ""), and returns status and body.
func (v *viewServer) do(t *testing.T, method, path, user, password, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, v.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoginNeedsTheBrokersUsers(t *testing.T) {
	v := newViewServer(t, classUsers)
	for _, c := range []struct{ user, password string }{{"", ""}, {"alice", "wrong"}, {"mallory", "s3cret-alice"}, {"teach", "s3cret-alice"}} {
		for _, path := range []string{"/", "/app.js", "/events", "/api/me"} {
			code, body := v.do(t, "GET", path, c.user, c.password, "")
			if code != http.StatusUnauthorized || strings.Contains(body, "<html") || strings.Contains(body, "data:") {
				t.Errorf("%s as %q/%q: %d %q", path, c.user, c.password, code, body)
			}
		}
		if code, _ := v.do(t, "POST", "/api/publish", c.user, c.password, `{"topic":"home/1/bulb/bulb-1/set","payload":"{}"}`); code != http.StatusUnauthorized {
			t.Errorf("publish as %q/%q: %d", c.user, c.password, code)
		}
	}
	if len(v.pub.published()) != 0 {
		t.Errorf("published without a login: %q", v.pub.published())
	}
	if code, body := v.do(t, "GET", "/", "alice", "s3cret-alice", ""); code != 200 || !strings.Contains(body, "fleetsim classroom") {
		t.Errorf("page for alice: %d", code)
	}
	if _, body := v.do(t, "GET", "/api/me", "alice", "s3cret-alice", ""); !strings.Contains(body, `"teacher":false`) || !strings.Contains(body, `"unplug":false`) {
		t.Errorf("alice is %s", body)
	}
	if _, body := v.do(t, "GET", "/api/me", "teach", "t0p-teach", ""); !strings.Contains(body, `"teacher":true`) {
		t.Errorf("teach is %s", body)
	}
}

func TestStudentsUseOnlyWhatTheirACLAllows(t *testing.T) {
	v := newViewServer(t, classUsers)
	cases := []struct {
		user, password, path, body string
		want                       int
	}{
		{"alice", "s3cret-alice", "/api/publish", `{"topic":"home/1/phone/phone-1/set","payload":"{\"away\":true}","qos":1}`, 200},
		{"alice", "s3cret-alice", "/api/publish", `{"topic":"home/1/heater/heater-1/setpoint","payload":"23"}`, 200},
		{"alice", "s3cret-alice", "/api/publish", `{"topic":"home/1/bulb/bulb-1/state","payload":"{}"}`, 403}, // forging a report
		{"alice", "s3cret-alice", "/api/publish", `{"topic":"students/bob/x","payload":"hi"}`, 403},
		{"alice", "s3cret-alice", "/api/unplug", `{"client":"fleetsim-x-1"}`, 403},
		{"teach", "t0p-teach", "/api/publish", `{"topic":"home/1/bulb/bulb-1/state","payload":"{}"}`, 200},
		{"teach", "t0p-teach", "/api/publish", `{"topic":"home/#","payload":"x"}`, 400},
		{"teach", "t0p-teach", "/api/publish", `{"topic":"a","payload":"x","qos":3}`, 400},
		{"teach", "t0p-teach", "/api/publish", `{"topic":"a","payload":"x","extra":1}`, 400},
		{"teach", "t0p-teach", "/api/unplug", `{"client":"fleetsim-x-1"}`, 200},
		{"teach", "t0p-teach", "/api/unplug", `{"client":"nobody"}`, 404},
	}
	for _, c := range cases {
		if code, body := v.do(t, "POST", c.path, c.user, c.password, c.body); code != c.want {
			t.Errorf("%s %s %s: %d %q, want %d", c.user, c.path, c.body, code, body, c.want)
		}
	}
	want := []string{"home/1/phone/phone-1/set", "home/1/heater/heater-1/setpoint", "home/1/bulb/bulb-1/state"}
	if got := v.pub.published(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("published %q, want %q", got, want)
	}
}

// A control is a JSON POST from the page's own origin: another site's form cannot send it.
func TestControlsRefuseOtherOrigins(t *testing.T) {
	v := newViewServer(t, nil)
	for _, c := range []struct {
		ctype, origin string
		want          int
	}{
		{"application/x-www-form-urlencoded", "", 415},
		{"application/json", "http://evil.example", 403},
		{"application/json", v.URL, 200},
	} {
		req, _ := http.NewRequest("POST", v.URL+"/api/publish", strings.NewReader(`{"topic":"home/1/bulb/bulb-1/set","payload":"{\"on\":true}"}`))
		req.Header.Set("Content-Type", c.ctype)
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s from %q: %d, want %d", c.ctype, c.origin, resp.StatusCode, c.want)
		}
	}
}

// Nothing a viewer gets holds a password: not the page, not the stream.
func TestNoPasswordInPageOrStream(t *testing.T) {
	v := newViewServer(t, classUsers)
	v.hub.ClientConnected("student-sub", "alice")
	v.hub.Subscribed("student-sub", []string{"home/#"})
	var all strings.Builder
	for _, path := range []string{"/", "/app.js", "/model.js", "/style.css", "/api/me"} {
		_, body := v.do(t, "GET", path, "teach", "t0p-teach", "")
		all.WriteString(body)
	}
	req, _ := http.NewRequest("GET", v.URL+"/events", nil)
	req.SetBasicAuth("alice", "s3cret-alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for !strings.Contains(all.String(), `"student-sub"`) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		all.WriteString(line)
	}
	for _, u := range classUsers {
		if strings.Contains(all.String(), u.Password) {
			t.Errorf("a password is in what viewers get")
		}
	}
}

// blockedWriter is a ResponseWriter whose writes wait until released: a viewer whose
// network stalled.
type blockedWriter struct {
	header  http.Header
	release chan struct{}
	mu      sync.Mutex
	out     strings.Builder
}

func (w *blockedWriter) Header() http.Header { return w.header }
func (w *blockedWriter) WriteHeader(int)     {}
func (w *blockedWriter) Flush()              {}
func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// A viewer whose network stalls loses events, and is told how many once it moves again.
func TestStalledStreamIsToldWhatItLost(t *testing.T) {
	hub := start(t, Options{AnimateLimit: 1 << 30})
	h := NewHandler(ServerOptions{Hub: hub})
	w := &blockedWriter{header: http.Header{}, release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "/events", nil))
	}()
	for hub.Stats().Viewers == 0 {
		time.Sleep(time.Millisecond)
	}
	// The stalled viewer's queue overflows. Bounded by time, not by events: on a busy
	// machine the Hub's own queue drops most of a tight loop's events before the Hub
	// goroutine runs, and it used to give up after 51,200 of them.
	for i, deadline := 0, time.Now().Add(10*time.Second); hub.Stats().ViewerDropped < 100; i++ {
		hub.ClientConnected("c"+string(rune('a'+i%26)), "")
		if i%64 == 0 {
			runtime.Gosched()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled viewer never lost anything: %+v", hub.Stats())
		}
	}
	close(w.release)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		hub.ClientConnected("after", "") // until the drained queue has room for it
		w.mu.Lock()
		out := w.out.String()
		w.mu.Unlock()
		if strings.Contains(out, `{"type":"lost","n":`) && strings.Contains(out, `"after"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lost notice in the stream: %.300s", out)
		}
	}
	cancel()
	<-done
}
