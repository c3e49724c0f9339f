package main

// End-to-end tests: they build the real binary, run it against the embedded broker or a
// real mosquitto started on a loopback port, and watch with separate MQTT clients (paho,
// mosquitto_sub) exactly as a user would.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// binary is the fleetsim binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetsim-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fleetsim")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fleetsim: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running fleetsim.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs fleetsim with args from the repository root (so scenarios/ resolves) and the
// given extra environment. The process is killed when the test ends.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	if flags, _ := transportOf(t); flags != nil && len(args) > 0 && args[0] == "run" {
		args = append(args[:len(args):len(args)], flags...)
	}
	p := &proc{cmd: exec.Command(binary, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = "../.."
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("fleetsim %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("fleetsim still running after %v", limit)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("fleetsim: %v", p.err)
	return -1
}

// observed is one message seen by the test's own subscriber.
type observed struct {
	topic   string
	payload string
	at      time.Time
}

// recorder collects messages and lets the test wait for one.
type recorder struct {
	mu   sync.Mutex
	msgs []observed
	news chan struct{}
}

func newRecorder() *recorder { return &recorder{news: make(chan struct{}, 1)} }

func (r *recorder) add(topic, payload string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, observed{topic, payload, time.Now()})
	r.mu.Unlock()
	select {
	case r.news <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observed(nil), r.msgs...)
}

// waitFor waits until a message satisfies ok and returns it.
func (r *recorder) waitFor(t *testing.T, limit time.Duration, what string, ok func(observed) bool) observed {
	t.Helper()
	deadline := time.After(limit)
	seen := 0
	for {
		msgs := r.all()
		for _, m := range msgs[seen:] {
			if ok(m) {
				return m
			}
		}
		seen = len(msgs)
		select {
		case <-r.news:
		case <-deadline:
			t.Fatalf("no message within %v: %s", limit, what)
		}
	}
}

// pahoObserver subscribes to '#' on broker with a paho client, retrying until the broker is
// up (fleetsim starts it), and records everything.
func pahoObserver(t *testing.T, broker string, r *recorder) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("e2e-observer").
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.add(m.Topic(), string(m.Payload())) })
	c := mqtt.NewClient(opts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok := c.Connect()
		if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot connect to %s: %v", broker, tok.Error())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return c
}

// mosquittoSubObserver records what `mosquitto_sub -t '#' -v` prints.
func mosquittoSubObserver(t *testing.T, addr string, r *recorder) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, testbroker.RequireTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-t", "#", "-v", "-q", "1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			topic, payload, _ := strings.Cut(sc.Text(), " ")
			r.add(topic, payload)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cmd.Wait() })
}

// state is the part of a device's state payload the assertions read.
type state struct {
	State    string   `json:"state"`
	Cause    string   `json:"cause"`
	Setpoint *float64 `json:"setpoint"`
}

func parseState(t *testing.T, m observed) state {
	t.Helper()
	var s state
	if err := json.Unmarshal([]byte(m.payload), &s); err != nil {
		t.Fatalf("%s: state payload %q is not JSON: %v", m.topic, m.payload, err)
	}
	return s
}

var (
	stateTopic    = regexp.MustCompile(`^home/1/(bulb|heater|camera|vacuum)/[a-z]+-1/state$`)
	positionTopic = regexp.MustCompile(`^home/1/phone/phone-1/position$`)
)

func isState(kind string) func(observed) bool {
	return func(m observed) bool { return m.topic == "home/1/"+kind+"/"+kind+"-1/state" }
}

// stateAfter returns the states kind published at or after from and before until.
func statesBetween(t *testing.T, msgs []observed, kind string, from, until time.Time) []state {
	var out []state
	for _, m := range msgs {
		if isState(kind)(m) && !m.at.Before(from) && m.at.Before(until) {
			out = append(out, parseState(t, m))
		}
	}
	return out
}

// lastStateBefore is kind's last published state before t0.
func lastStateBefore(t *testing.T, msgs []observed, kind string, t0 time.Time) state {
	var s state
	for _, m := range msgs {
		if isState(kind)(m) && m.at.Before(t0) {
			s = parseState(t, m)
		}
	}
	return s
}

// checkSmartHome asserts the seed's causal chains on what the observer saw, then sends a
// set point with send and checks the heater follows it.
func checkSmartHome(t *testing.T, r *recorder, send func(topic, payload string)) {
	t.Helper()
	away := func(wantAway bool) func(observed) bool {
		return func(m observed) bool {
			if !positionTopic.MatchString(m.topic) {
				return false
			}
			var p struct{ Away bool }
			return json.Unmarshal([]byte(m.payload), &p) == nil && p.Away == wantAway
		}
	}
	// With --day 24s a simulated hour takes one second: the phone leaves at 08:00 (2 s
	// in) and comes back at 18:00 (12 s in).
	left := r.waitFor(t, 15*time.Second, "phone away", away(true))
	back := r.waitFor(t, 20*time.Second, "phone back home", func(m observed) bool { return m.at.After(left.at) && away(false)(m) })

	// The heater turns on because the outdoor sensor reports cold (around 19:45).
	r.waitFor(t, 15*time.Second, "heater on, caused by the outdoor temperature", func(m observed) bool {
		if !isState("heater")(m) || m.at.Before(back.at) {
			return false
		}
		s := parseState(t, m)
		return s.State == "on" && strings.Contains(s.Cause, "/sensor/outdoor-1/temperature")
	})
	// The phone's 21:00 and 23:30 set points reach the heater.
	for _, sp := range []float64{23, 18} {
		r.waitFor(t, 15*time.Second, fmt.Sprintf("heater set point %v from the phone", sp), func(m observed) bool {
			s := state{}
			return isState("heater")(m) && json.Unmarshal([]byte(m.payload), &s) == nil && s.Setpoint != nil && *s.Setpoint == sp
		})
	}
	// A set point command from an outside client: the heater follows it and, as the
	// night is cold, someone is home and 30 °C is above the indoor temperature, turns on.
	sent := time.Now()
	send("home/1/heater/setpoint", "30")
	r.waitFor(t, 5*time.Second, "heater on at set point 30 after our command", func(m observed) bool {
		if !isState("heater")(m) || m.at.Before(sent) {
			return false
		}
		s := parseState(t, m)
		return s.Setpoint != nil && *s.Setpoint == 30 && s.State == "on"
	})

	msgs := r.all()
	// Phone away → bulb off, heater off, camera armed, vacuum cleaning, each caused by
	// the phone's position topic.
	for kind, want := range map[string]string{"bulb": "off", "camera": "armed", "vacuum": "cleaning"} {
		changes := statesBetween(t, msgs, kind, left.at, back.at)
		if len(changes) == 0 || changes[0].State != want || !strings.Contains(changes[0].Cause, "/phone/") {
			t.Errorf("after the phone left, %s: want first state %q caused by the phone's position, got %+v", kind, want, changes)
		}
	}
	if s := lastStateBefore(t, msgs, "heater", back.at); s.State != "off" {
		t.Errorf("heater while the phone was away: %q, want off", s.State)
	}
	for _, s := range statesBetween(t, msgs, "heater", left.at.Add(100*time.Millisecond), back.at) {
		if s.State == "on" {
			t.Errorf("heater turned on while nobody was home: %+v", s)
		}
	}
	// Phone back → the reverse.
	for kind, want := range map[string]string{"bulb": "on", "camera": "off"} {
		changes := statesBetween(t, msgs, kind, back.at, back.at.Add(time.Second))
		if len(changes) == 0 || changes[0].State != want || !strings.Contains(changes[0].Cause, "/phone/") {
			t.Errorf("after the phone came back, %s: want %q caused by the phone's position, got %+v", kind, want, changes)
		}
	}
	if s := lastStateBefore(t, msgs, "vacuum", back.at.Add(time.Second)); s.State != "docked" {
		t.Errorf("vacuum after the phone came back: %q, want docked", s.State)
	}
}

var smartHomeArgs = []string{"run", "scenarios/smart-home.yaml", "--day", "24s", "--duration", "25s"}

func TestSmartHomeEmbeddedBroker(t *testing.T) {
	t.Parallel()
	eachClient(t, testSmartHomeEmbeddedBroker)
}

func testSmartHomeEmbeddedBroker(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, append(smartHomeArgs, "--listen", addr, "--metrics-addr", metricsAddr)...)

	r := newRecorder()
	c := pahoObserver(t, "tcp://"+addr, r)
	checkSmartHome(t, r, func(topic, payload string) {
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	})
	checkMetrics(t, "http://"+metricsAddr+"/metrics")

	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := p.stdout.String()
	for _, want := range []string{"fleetsim summary: smart-home", "(" + says(t) + ")", "heater-1", "bulb-1", "home → away", "set point 23.0 °C"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
}

// checkMetrics scrapes the live endpoint: exact gauges through testutil, counters that
// must have moved, and the lint rules client_golang applies.
func checkMetrics(t *testing.T, url string) {
	t.Helper()
	want := `
# HELP fleetsim_connections MQTT connections currently open.
# TYPE fleetsim_connections gauge
fleetsim_connections{scenario="smart-home"} 1
# HELP fleetsim_devices Devices running.
# TYPE fleetsim_devices gauge
fleetsim_devices{kind="bulb",scenario="smart-home"} 1
fleetsim_devices{kind="camera",scenario="smart-home"} 1
fleetsim_devices{kind="heater",scenario="smart-home"} 1
fleetsim_devices{kind="phone",scenario="smart-home"} 1
fleetsim_devices{kind="sensor",scenario="smart-home"} 2
fleetsim_devices{kind="vacuum",scenario="smart-home"} 1
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want), "fleetsim_connections", "fleetsim_devices"); err != nil {
		t.Errorf("metrics: %v", err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{
		`fleetsim_messages_published_total\{kind="phone",qos="1",scenario="smart-home"\} [1-9]`,
		`fleetsim_messages_received_total\{kind="heater",qos="1",scenario="smart-home"\} [1-9]`,
		`fleetsim_published_payload_bytes_total\{kind="sensor",qos="1",scenario="smart-home"\} [1-9]`,
		`fleetsim_device_state_changes_total\{kind="bulb",scenario="smart-home"\} [1-9]`,
		`fleetsim_devices_in_state\{kind="heater",scenario="smart-home",state="on"\} 1`,
		`fleetsim_build_info\{goversion="go[^"]+",version="[^"]+"\} 1`,
		`fleetsim_transport_info\{client="(paho|lean)",protocol="(3.1.1|5)",scenario="smart-home"\} 1`,
		`fleetsim_broker_clients [1-9]`, // the embedded broker's own view
		`fleetsim_broker_messages_sent_total [1-9]`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("metrics lack %s", re)
		}
	}
}

func TestSmartHomeMosquitto(t *testing.T) {
	t.Parallel()
	eachClient(t, testSmartHomeMosquitto)
}

func testSmartHomeMosquitto(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	pub := testbroker.RequireTool(t, "mosquitto_pub")
	r := newRecorder()
	mosquittoSubObserver(t, m.Addr, r)
	p := start(t, nil, append(smartHomeArgs, "--broker", m.URL(), "--metrics-addr", "off")...)
	host, port, _ := net.SplitHostPort(m.Addr)
	checkSmartHome(t, r, func(topic, payload string) {
		if out, err := exec.Command(pub, "-h", host, "-p", port, "-t", topic, "-m", payload, "-q", "1").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
	})
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	// Retained state: a subscriber that arrives after the run still sees every device's
	// last state.
	host, port, _ = net.SplitHostPort(m.Addr)
	out, err := exec.Command(testbroker.RequireTool(t, "mosquitto_sub"), "-h", host, "-p", port,
		"-t", "home/1/+/+/state", "-v", "--retained-only", "-W", "2").Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("mosquitto_sub --retained-only: %v", err)
	}
	for _, kind := range []string{"bulb", "heater", "camera", "vacuum"} {
		if !strings.Contains(string(out), "home/1/"+kind+"/"+kind+"-1/state {") {
			t.Errorf("no retained state for %s; got:\n%s", kind, out)
		}
	}
}

var publishedLine = regexp.MustCompile(`^Just published (\d+\.\d+) to topic TEMPERATURE$`)

func TestTemperatureScenarioMosquitto(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	r := newRecorder()
	mosquittoSubObserver(t, m.Addr, r)
	p := start(t, nil, "run", "scenarios/temperature.yaml", "--broker", m.URL(), "--duration", "3500ms", "--metrics-addr", "off")
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	published := 0
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		if mm := publishedLine.FindStringSubmatch(line); mm != nil {
			v, _ := strconv.ParseFloat(mm[1], 64)
			if v < 20 || v >= 21 {
				t.Errorf("reading %v is not around 20 °C", v)
			}
			published++
		}
	}
	if published < 3 {
		t.Errorf("want at least 3 'Just published ... to topic TEMPERATURE' lines, got %d", published)
	}
	if n := strings.Count(p.stdout.String(), " on TEMPERATURE"); n < published-1 {
		t.Errorf("the subscriber printed %d receipts for %d publishes", n, published)
	}
	// mosquitto_sub saw the same readings as bare numbers.
	got := 0
	for _, o := range r.all() {
		if o.topic == "TEMPERATURE" {
			if _, err := strconv.ParseFloat(o.payload, 64); err != nil {
				t.Errorf("TEMPERATURE payload %q is not a number", o.payload)
			}
			got++
		}
	}
	if got < published-1 {
		t.Errorf("mosquitto_sub saw %d readings, fleetsim published %d", got, published)
	}
}

func TestEncyclopediaOverTLSWithPassword(t *testing.T) {
	t.Parallel()
	eachClient(t, testEncyclopediaOverTLSWithPassword)
}

func testEncyclopediaOverTLSWithPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testbroker.NewTestCA(t, dir, "127.0.0.1", "localhost")
	const password = "s3cret-Pa55word"
	m := testbroker.StartMosquitto(t, testbroker.Config{TLS: &ca, Users: map[string]string{"alice": password}})

	run := func(t *testing.T, env []string, args ...string) (*proc, int, time.Duration) {
		begin := time.Now()
		p := start(t, env, append([]string{"run", "scenarios/encyclopedia.yaml", "--broker", m.TLSURL(), "--metrics-addr", "off", "--connect-timeout", "5s"}, args...)...)
		code := p.wait(t, 20*time.Second)
		for _, out := range []string{p.stdout.String(), p.stderr.String()} {
			if strings.Contains(out, password) {
				t.Errorf("the password appears in fleetsim's output")
			}
		}
		return p, code, time.Since(begin)
	}

	t.Run("ok", func(t *testing.T) {
		p, code, _ := run(t, []string{"FLEETSIM_PASSWORD=" + password}, "--ca-file", ca.CA, "--username", "alice", "--duration", "2s")
		if code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		for _, want := range []string{"Subscribed to encyclopedia/# (granted QoS 1)", "Published hot to encyclopedia/temperature (QoS 1)", "Received hot on encyclopedia/temperature (QoS 1)"} {
			if !strings.Contains(p.stdout.String(), want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
	})
	t.Run("password not in metrics or the report", func(t *testing.T) {
		metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
		report := filepath.Join(t.TempDir(), "report.json")
		p := start(t, []string{"FLEETSIM_PASSWORD=" + password}, "run", "scenarios/encyclopedia.yaml", "--broker", m.TLSURL(),
			"--ca-file", ca.CA, "--username", "alice", "--duration", "3s", "--metrics-addr", metricsAddr, "--report", report)
		var body []byte
		for deadline := time.Now().Add(5 * time.Second); len(body) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		}
		if !bytes.Contains(body, []byte("fleetsim_connections")) {
			t.Fatalf("could not scrape the metrics during the run")
		}
		if bytes.Contains(body, []byte(password)) {
			t.Errorf("the password appears in the metrics")
		}
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		for name, out := range map[string]string{"stdout": p.stdout.String(), "stderr": p.stderr.String()} {
			if strings.Contains(out, password) {
				t.Errorf("the password appears on %s", name)
			}
		}
		written, err := os.ReadFile(report)
		if err != nil || !bytes.Contains(written, []byte(`"schema"`)) {
			t.Fatalf("no report written (%v)", err)
		}
		if bytes.Contains(written, []byte(password)) {
			t.Errorf("the password appears in the report")
		}
	})
	t.Run("password file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "password")
		os.WriteFile(f, []byte(password+"\n"), 0o600)
		_, code, _ := run(t, nil, "--ca-file", ca.CA, "--username", "alice", "--password-file", f, "--duration", "1s")
		if code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	})
	// A certificate for another host name, and mosquitto's plain port spoken to in TLS.
	otherCA := testbroker.NewTestCA(t, t.TempDir(), "broker.example")
	other := testbroker.StartMosquitto(t, testbroker.Config{TLS: &otherCA})
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"FLEETSIM_PASSWORD=wrong", "FLEETSIM_USERNAME=alice"}, []string{"--ca-file", ca.CA}, 4, "username or password"},
		{"unknown CA", []string{"FLEETSIM_PASSWORD=" + password}, []string{"--username", "alice"}, 5, "unknown authority"},
		{"wrong host name", nil, []string{"--ca-file", otherCA.CA, "--broker", other.TLSURL()}, 5, "not valid for this host"},
		{"TLS to a plain port", nil, []string{"--ca-file", ca.CA, "--broker", "ssl://" + m.Addr}, 5, "did not answer with TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, code, took := run(t, c.env, c.args...)
			if code != c.code {
				t.Fatalf("exit code %d, want %d", code, c.code)
			}
			if took > 10*time.Second {
				t.Errorf("took %v to fail, want seconds", took)
			}
			if !strings.Contains(p.stderr.String(), c.want) {
				t.Errorf("stderr does not say %q", c.want)
			}
		})
	}
}

func TestBadInputExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nhomes: 0\ndevices:\n  - kind: bulb\n    perod: 1s\n"), 0o644)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"run", "--no-such-flag", "scenarios/smart-home.yaml"}, 2, "no-such-flag"},
		{"bad duration", []string{"run", "scenarios/smart-home.yaml", "--duration", "soon"}, 2, "duration"},
		{"bad broker", []string{"run", "scenarios/smart-home.yaml", "--broker", "http://x"}, 2, "scheme"},
		{"missing file", []string{"run", "no-such.yaml"}, 2, "no-such.yaml"},
		{"invalid scenario", []string{"run", bad}, 2, "bad.yaml:2:"},
		{"validate reports every problem", []string{"validate", bad}, 1, "bad.yaml:5:"},
		{"unknown command", []string{"fly"}, 2, "unknown command"},
		{"unreachable broker, after retrying", []string{"run", "scenarios/temperature.yaml", "--broker", fmt.Sprintf("tcp://127.0.0.1:%d", testbroker.FreePort(t)), "--metrics-addr", "off", "--connect-retry-for", "1s"}, 3, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, nil, c.args...)
			if code := p.wait(t, 15*time.Second); code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if !strings.Contains(p.stderr.String(), c.want) {
				t.Errorf("stderr does not mention %q:\n%s", c.want, p.stderr)
			}
		})
	}
}

func TestHelpAndValidateScenarios(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"validate", "--help"}, {"help", "run"}} {
		p := start(t, nil, args...)
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("%v: exit code %d", args, code)
		}
		if !strings.Contains(p.stdout.String(), "Example") {
			t.Errorf("%v: help has no example:\n%s", args, p.stdout)
		}
	}
	p := start(t, nil, "kinds")
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("kinds: exit code %d", code)
	}
	for _, want := range []string{"heater:", "cold_below: 10", "link profiles", "nb-iot ", "satellite "} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("fleetsim kinds does not list %q", want)
		}
	}
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	if len(files) < 3 {
		t.Fatalf("found %d scenarios", len(files))
	}
	for i := range files {
		files[i] = strings.TrimPrefix(files[i], "../../")
	}
	p = start(t, nil, append([]string{"validate"}, files...)...)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("validate scenarios/*.yaml: exit code %d\n%s", code, p.stderr)
	}
}

func TestInterruptPrintsSummary(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", "scenarios/smart-home.yaml", "--listen", addr, "--metrics-addr", "off", "--duration", "0")
	r := newRecorder()
	pahoObserver(t, "tcp://"+addr, r)
	r.waitFor(t, 10*time.Second, "the phone's first position", func(m observed) bool { return positionTopic.MatchString(m.topic) })
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C, want 0", code)
	}
	if out := p.stdout.String(); !strings.Contains(out, "fleetsim summary: smart-home") || !strings.Contains(out, "interrupted") {
		t.Errorf("no interrupted summary on stdout")
	}
	if !strings.Contains(p.stderr.String(), "Ctrl-C again") {
		t.Errorf("stderr does not say how to stop at once")
	}
}

func TestWebSocketBroker(t *testing.T) {
	t.Parallel()
	eachClient(t, testWebSocketBroker)
}

func testWebSocketBroker(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := start(t, nil, "run", "scenarios/encyclopedia.yaml", "--broker", b.WSURL(), "--metrics-addr", "off", "--duration", "1s")
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.stdout.String(), "Received hot on encyclopedia/temperature (QoS 1)") {
		t.Errorf("the client did not receive its own message over %s", b.WSURL())
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	eachClient(t, testMutualTLS)
}

func testMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testbroker.NewTestCA(t, dir, "127.0.0.1", "localhost")
	client := testbroker.NewClientCert(t, ca, "fleetsim-test")
	m := testbroker.StartMosquitto(t, testbroker.Config{TLS: &ca, RequireClientCert: true})
	args := []string{"run", "scenarios/encyclopedia.yaml", "--broker", m.TLSURL(), "--ca-file", ca.CA, "--metrics-addr", "off", "--duration", "1s", "--connect-timeout", "5s"}

	p := start(t, nil, append(args, "--cert-file", client.Cert, "--key-file", client.Key)...)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("with a client certificate: exit code %d, want 0", code)
	}
	if !strings.Contains(p.stdout.String(), "Received hot on encyclopedia/temperature (QoS 1)") {
		t.Errorf("with a client certificate: no message received")
	}
	p = start(t, nil, args...)
	if code := p.wait(t, 15*time.Second); code == 0 {
		t.Fatalf("without a client certificate: exit code 0, want a failure")
	}
}

// readings returns the values of the "Just published" lines in out.
func readings(out string) []string {
	var vs []string
	for _, line := range strings.Split(out, "\n") {
		if m := publishedLine.FindStringSubmatch(line); m != nil {
			vs = append(vs, m[1])
		}
	}
	return vs
}

func TestSeedMakesRunsReproducible(t *testing.T) {
	t.Parallel()
	run := func(seed string) []string {
		addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
		p := start(t, nil, "run", "scenarios/temperature.yaml", "--listen", addr, "--metrics-addr", "off", "--duration", "1500ms", "--seed", seed)
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("seed %s: exit code %d", seed, code)
		}
		vs := readings(p.stdout.String())
		if len(vs) < 2 {
			t.Fatalf("seed %s: %d readings, want at least 2", seed, len(vs))
		}
		return vs[:2]
	}
	a, b, c := run("7"), run("7"), run("8")
	if !slices.Equal(a, b) {
		t.Errorf("the same seed gave different readings: %v and %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 gave the same readings %v", a)
	}
}

func TestConstrainedLinks(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", "scenarios/constrained.yaml", "--duration", "14s", "--listen", addr, "--metrics-addr", metricsAddr)
	r := newRecorder()
	pahoObserver(t, "tcp://"+addr, r)
	// Sensor readings over NB-IoT (QoS 1) keep arriving while the camera's uplink is full.
	r.waitFor(t, 12*time.Second, "a snapshot", func(m observed) bool { return strings.HasSuffix(m.topic, "/snapshot") })
	snapAt := time.Now()
	r.waitFor(t, 8*time.Second, "a sensor reading after the camera started sending", func(m observed) bool {
		return m.at.After(snapAt) && strings.HasSuffix(m.topic, "/temperature")
	})
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{
		`fleetsim_link_bytes_total\{direction="up",profile="wifi-congested",scenario="constrained"\} [1-9]`,
		`fleetsim_link_bytes_total\{direction="up",profile="nb-iot",scenario="constrained"\} [1-9]`,
		`fleetsim_link_wait_seconds_total\{direction="up",profile="wifi-congested",scenario="constrained"\} [0-9.e+-]*[1-9]`,
		`fleetsim_link_wait_seconds_count\{direction="up",profile="wifi-congested",scenario="constrained"\} [1-9]`,
		`fleetsim_link_connects_total\{profile="nb-iot",scenario="constrained"\} [1-9]`,
	} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("metrics lack %s", re)
		}
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := p.stdout.String()
	if !strings.Contains(out, "snapshot of 16384 bytes took") {
		t.Errorf("the console does not show snapshots queueing behind the slow link")
	}
	// The congested uplink never carried more than its 8000 B/s.
	m := regexp.MustCompile(`(?m)^\s*wifi-congested\s+1\s+8000\s+(\d+)\s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no wifi-congested row in the links summary")
	}
	if used, _ := strconv.Atoi(m[1]); used <= 0 || used > 8000*102/100 {
		t.Errorf("wifi-congested carried %d B/s on average, want (0, 8160]", used)
	}
}

func TestClassroomBrokerUsers(t *testing.T) {
	t.Parallel()
	users := filepath.Join(t.TempDir(), "class.txt")
	if err := os.WriteFile(users, []byte("# the class\nalice:pw1\n\nteach:pw2:teacher\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", "scenarios/smart-home.yaml", "--day", "24s", "--duration", "6s",
		"--listen", addr, "--metrics-addr", "off", "--broker-users", users)

	// login connects as user, retrying until fleetsim's broker is up.
	login := func(id, user, password string, r *recorder) mqtt.Client {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetUsername(user).SetPassword(password).SetAutoReconnect(false)
		if r != nil {
			opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.add(m.Topic(), string(m.Payload())) })
		}
		c := mqtt.NewClient(opts)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			tok := c.Connect()
			if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cannot connect to %s as %s: %v", addr, user, tok.Error())
			}
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	r := newRecorder()
	teacher := login("e2e-teacher", "teach", "pw2", r)
	if tok := teacher.Subscribe("#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	alice := login("e2e-alice", "alice", "pw1", nil)
	publish := func(topic string, qos byte, payload string) {
		if tok := alice.Publish(topic, qos, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	// The devices run with fleetsim's own credentials: the heater reports its state.
	r.waitFor(t, 10*time.Second, "heater state", isState("heater"))
	// A forged state (QoS 0, so the broker drops it rather than disconnecting alice), then
	// a set point on the same connection: once the heater obeys the set point, the forged
	// state would have been delivered already.
	publish("home/1/bulb/bulb-1/state", 0, `{"state":"hacked"}`)
	publish("home/1/heater/setpoint", 1, "30")
	r.waitFor(t, 5*time.Second, "heater set point 30 from alice", func(m observed) bool {
		s := state{}
		return isState("heater")(m) && json.Unmarshal([]byte(m.payload), &s) == nil && s.Setpoint != nil && *s.Setpoint == 30
	})
	time.Sleep(300 * time.Millisecond)
	for _, m := range r.all() {
		if strings.Contains(m.payload, "hacked") {
			t.Errorf("the teacher saw alice's forged %s %s", m.topic, m.payload)
		}
	}

	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out, errOut := p.stdout.String(), p.stderr.String()
	for _, pw := range []string{"pw1", "pw2"} {
		if strings.Contains(out, pw) || strings.Contains(errOut, pw) {
			t.Errorf("a password (%s) was printed", pw)
		}
	}
	for _, want := range []string{"alice (student)", "teach (teacher)", "students/<name>/#"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}
