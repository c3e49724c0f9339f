package main

// The classroom view, end to end: the real binary serves it, a real headless Chromium
// (Debian's chromium, installed by make deps) drives it, and separate MQTT clients check
// that what the page shows and does happens on the broker.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// updateScreenshot rewrites the README's picture of the view from the browser test:
// go test ./cmd/fleetsim -run TestClassroomView -args -fleetsim.screenshot
var updateScreenshot = flag.Bool("fleetsim.screenshot", false, "write the classroom view's screenshot to testdata/classroom.png")

// viewURL waits for the run to print the classroom view's address and returns it.
func viewURL(t *testing.T, p *proc) string {
	t.Helper()
	re := regexp.MustCompile(`classroom view on (http://\S+/)`)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no classroom view address printed; stderr:\n%s", p.stderr)
	return ""
}

// browser starts a headless Chromium and returns its context, with the JavaScript
// errors it reports collected in errs.
func browser(t *testing.T, timeout time.Duration) (context.Context, func() []string) {
	t.Helper()
	exe := testbroker.RequireTool(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in a container has no user namespaces for the sandbox
		chromedp.WindowSize(1280, 720))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	var mu = make(chan struct{}, 1)
	var errs []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu <- struct{}{}
		defer func() { <-mu }()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			errs = append(errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded: // the browser's own (enabled by chromedp): a refused script or style (CSP), a failed load
			if ev.Entry.Level == "error" {
				errs = append(errs, fmt.Sprintf("browser: %s %s", ev.Entry.Text, ev.Entry.URL))
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "warning" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				errs = append(errs, "console: "+strings.Join(args, " "))
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx, func() []string {
		mu <- struct{}{}
		defer func() { <-mu }()
		return append([]string(nil), errs...)
	}
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(ctx context.Context, t *testing.T, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("%s: %v (%s)", what, err, expr)
	}
}

// The browser tests run one at a time (not parallel): Chromium is heavy, and the
// machine's two cores are shared with timing-sensitive tests of other packages.
func TestClassroomView(t *testing.T) {
	ctx, jsErrors := browser(t, 60*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	// A simulated day of 24 h: the phone's schedule does not move while the test runs.
	p := start(t, nil, "run", "scenarios/smart-home.yaml", "--day", "24h", "--duration", "60s",
		"--listen", addr, "--metrics-addr", "off", "--ui", "127.0.0.1:0")
	url := viewURL(t, p)
	r := newRecorder()
	pahoObserver(t, "tcp://"+addr, r)

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 720), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"phone", "bulb", "heater", "camera", "vacuum", "sensor"} {
		waitJS(ctx, t, kind+" on the page with its state",
			fmt.Sprintf(`[...document.querySelectorAll('g.node[data-kind=%q]')].some(n => n.dataset.state && n.dataset.state !== "?")`, kind))
	}
	waitJS(ctx, t, "bulb lit while the phone is home", `document.querySelector('[data-node="d:1/bulb-1"][data-state="on"]') !== null`)
	waitJS(ctx, t, "sensors read", `document.querySelector('[data-node="d:1/outdoor-1"]').textContent.includes("°C")`)

	// "Phone leaves": a real publish on the phone's command topic; the bulb turns off in the
	// page and on the broker.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#phone-away"))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "bulb dark once the phone left", `document.querySelector('[data-node="d:1/bulb-1"][data-state="off"]') !== null`)
	waitJS(ctx, t, "phone drawn outside", `document.querySelector('[data-node="d:1/phone-1"]').textContent.includes("outside")`)
	r.waitFor(t, 10*time.Second, "bulb off on the broker", func(m observed) bool {
		return m.topic == "home/1/bulb/bulb-1/state" && strings.Contains(m.payload, `"state":"off"`)
	})

	// Two members of a shared subscription: the broker delivers to one, and the page
	// draws the message to that one only.
	for _, id := range []string{"group-a", "group-b"} {
		sharedMember(t, "tcp://"+addr, id, "$share/class/home/1/heater/heater-1/setpoint")
	}
	waitJS(ctx, t, "both members on the page", `document.querySelector('[data-node="c:group-b"]') !== null`)

	// A set point from outside: a new client node, its message animated, the new set point.
	host, port, _ := net.SplitHostPort(addr)
	pub := testbroker.RequireTool(t, "mosquitto_pub")
	if out, err := exec.Command(pub, "-h", host, "-p", port, "-i", "student-pub", "-q", "1",
		"-t", "home/1/heater/heater-1/setpoint", "-m", "26").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	waitJS(ctx, t, "mosquitto_pub as its own node", `document.querySelector('[data-node="c:student-pub"]') !== null`)
	waitJS(ctx, t, "its message animated to the heater",
		`window.classroom.trips.some(s => s.startsWith("c:student-pub home/1/heater/heater-1/setpoint") && s.includes("d:1/heater-1"))`)
	// What the page holds of the message (its log line says the same): one member reached.
	waitJS(ctx, t, "the shared subscription's message delivered to one member", `(() => {
		const msg = [...window.classroom.view.recent.values()].map(r => r.m)
			.filter(m => m.from === "c:student-pub" && m.topic === "home/1/heater/heater-1/setpoint");
		return msg.length === 1 && msg[0].to.filter(t => t.node.startsWith("c:group-")).length === 1;
	})()`)
	// The picture is taken with the message on its way.
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "classroom.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkNotBlank(t, shot)
	if *updateScreenshot {
		if err := os.WriteFile("testdata/classroom.png", shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitJS(ctx, t, "the heater's new set point", `document.querySelector('[data-node="d:1/heater-1"]').textContent.includes("set point 26.0 °C")`)
	waitJS(ctx, t, "the matched filter highlighted", `[...document.querySelectorAll('#sublist code.hit')].some(c => c.textContent.length > 0)`)

	// The log's filter box takes an MQTT filter.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#logfilter"), "home/1/+/+/state")); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "the log filtered by topic", `(() => {
		const shown = [...document.querySelectorAll('#loglist li')].filter(li => !li.hidden);
		return shown.length > 0 && shown.every(li => /^home\/1\/[^/]+\/[^/]+\/state$/.test(li.dataset.topic));
	})()`)

	// Pause holds what arrives; Step plays one message; Resume plays the rest.
	var before int
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.getElementById("pause").click(), window.classroom.msgs`)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "a message held while paused", `window.classroom.view.held.some(e => e.type === "msg")`)
	before, err = chromedp.Run(ctx, chromedp.Evaluate[int](`window.classroom.msgs`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#step"))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "one message stepped", fmt.Sprintf(`window.classroom.msgs === %d`, before+1))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#pause"))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "nothing held once resumed", `window.classroom.view.held.length === 0 && !window.classroom.view.paused`)

	if errs := jsErrors(); len(errs) > 0 {
		t.Errorf("JavaScript errors:\n%s", strings.Join(errs, "\n"))
	}
}

// checkNotBlank fails unless the screenshot is 1280x720 and shows many colours.
func checkNotBlank(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 720 {
		t.Errorf("screenshot is %v, want 1280x720", b)
	}
	colours := map[[3]uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 3 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot looks blank: %d colours", len(colours))
	}
}

// viewRequest sends a request to the view as user (none when ""), returning status and body.
func viewRequest(t *testing.T, method, url, user, password, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
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

// fleetClient reads the view's snapshot as user and returns the id of fleetsim's own
// connection, and the snapshot.
func fleetClient(t *testing.T, url, user, password string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"events", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var snap struct {
			Type    string
			Clients []struct {
				ID    string
				Fleet bool
			}
		}
		if json.Unmarshal([]byte(line), &snap) != nil || snap.Type != "snapshot" {
			continue
		}
		for _, c := range snap.Clients {
			if c.Fleet {
				return c.ID, line
			}
		}
		t.Fatalf("no fleet connection in the snapshot: %s", line)
	}
	t.Fatalf("no snapshot: %v", sc.Err())
	return "", ""
}

// With the broker's users the view asks for them: a wrong password gets nothing, a
// student steers devices but cannot unplug, a teacher unplugs a connection and the
// retained state stays while the fleet reconnects. No password shows anywhere.
func TestClassroomViewLoginAndUnplug(t *testing.T) {
	t.Parallel()
	users := filepath.Join(t.TempDir(), "class.txt")
	if err := os.WriteFile(users, []byte("alice:pw-alice-1\nteach:pw-teach-2:teacher\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", "scenarios/smart-home.yaml", "--day", "24h", "--duration", "40s",
		"--listen", addr, "--metrics-addr", "off", "--broker-users", users, "--ui", "127.0.0.1:0")
	url := viewURL(t, p)
	for _, who := range [][2]string{{"", ""}, {"alice", "pw-teach-2"}, {"nobody", "pw-alice-1"}} {
		if code, body := viewRequest(t, "GET", url, who[0], who[1], ""); code != http.StatusUnauthorized || strings.Contains(body, "<script") {
			t.Errorf("page as %q: %d %.80q", who[0], code, body)
		}
	}
	if code, body := viewRequest(t, "GET", url, "alice", "pw-alice-1", ""); code != 200 || !strings.Contains(body, "fleetsim classroom") {
		t.Fatalf("page as alice: %d", code)
	}

	r := newRecorder()
	observer := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("e2e-teacher").
		SetUsername("teach").SetPassword("pw-teach-2").
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.add(m.Topic(), string(m.Payload())) }))
	if tok := observer.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer observer.Disconnect(100)
	if tok := observer.Subscribe("#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	fleet, snapshot := fleetClient(t, url, "alice", "pw-alice-1")
	if code, _ := viewRequest(t, "POST", url+"api/unplug", "alice", "pw-alice-1", `{"client":"`+fleet+`"}`); code != http.StatusForbidden {
		t.Errorf("alice unplugging: %d, want 403", code)
	}
	if code, body := viewRequest(t, "POST", url+"api/publish", "alice", "pw-alice-1",
		`{"topic":"home/1/phone/phone-1/set","payload":"{\"away\":true}","qos":1}`); code != 200 {
		t.Fatalf("alice's phone leaves: %d %s", code, body)
	}
	r.waitFor(t, 10*time.Second, "bulb off after alice's command", func(m observed) bool {
		return m.topic == "home/1/bulb/bulb-1/state" && strings.Contains(m.payload, `"state":"off"`)
	})

	if code, body := viewRequest(t, "POST", url+"api/unplug", "teach", "pw-teach-2", `{"client":"`+fleet+`"}`); code != 200 {
		t.Fatalf("teacher unplugging %s: %d %s", fleet, code, body)
	}
	unplugged := time.Now()
	late := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("e2e-late").
		SetUsername("teach").SetPassword("pw-teach-2"))
	if tok := late.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer late.Disconnect(100)
	retained := make(chan string, 1)
	late.Subscribe("home/1/bulb/bulb-1/state", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case retained <- string(m.Payload()):
		default:
		}
	})
	select {
	case s := <-retained:
		if !strings.Contains(s, `"state":"off"`) {
			t.Errorf("retained bulb state after the unplug: %s", s)
		}
	case <-time.After(5 * time.Second):
		t.Error("no retained bulb state after the unplug")
	}
	r.waitFor(t, 20*time.Second, "the fleet back after the unplug", func(m observed) bool {
		return m.at.After(unplugged.Add(100*time.Millisecond)) && strings.HasSuffix(m.topic, "/temperature")
	})

	p.cmd.Process.Signal(os.Interrupt)
	p.wait(t, 20*time.Second)
	for _, pw := range []string{"pw-alice-1", "pw-teach-2"} {
		if strings.Contains(p.stdout.String()+p.stderr.String()+snapshot, pw) {
			t.Errorf("a password (%s) was printed or streamed", pw)
		}
	}
}

// Against an external broker the view works from one subscriber: it shows the devices'
// messages, its controls publish there, and it says what it cannot see.
func TestClassroomViewExternalBroker(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	p := start(t, nil, "run", "scenarios/smart-home.yaml", "--day", "24h", "--duration", "30s",
		"--broker", m.URL(), "--metrics-addr", "off", "--ui", "127.0.0.1:0")
	url := viewURL(t, p)
	req, _ := http.NewRequest("GET", url+"events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- l
			}
		}
	}()
	waitLine := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("stream ended before %s", what)
				}
				if ok(l) {
					return
				}
			case <-deadline:
				t.Fatalf("not in the stream: %s", what)
			}
		}
	}
	waitLine("the snapshot says what the view cannot see", func(l string) bool {
		return strings.Contains(l, `"type":"snapshot"`) && strings.Contains(l, "one subscriber on home/#")
	})
	if code, body := viewRequest(t, "POST", url+"api/publish", "", "", `{"topic":"home/1/phone/phone-1/set","payload":"{\"away\":true}","qos":1}`); code != 200 {
		t.Fatalf("phone leaves: %d %s", code, body)
	}
	waitLine("the command, from an unknown sender, to the phone", func(l string) bool {
		return strings.Contains(l, `"topic":"home/1/phone/phone-1/set"`) && strings.Contains(l, `"from":"c:(unknown)"`) &&
			strings.Contains(l, `{"node":"d:1/phone-1","filter":"home/1/phone/phone-1/set"}`)
	})
	waitLine("the bulb's state, off, from the bulb", func(l string) bool {
		return strings.Contains(l, `"topic":"home/1/bulb/bulb-1/state"`) && strings.Contains(l, `"from":"d:1/bulb-1"`) &&
			strings.Contains(l, `\"state\":\"off\"`)
	})
}

// Several homes show as a grid that opens a house; above the animation limit the view
// draws rates on the edges instead of each message.
func TestClassroomViewHomesAndRates(t *testing.T) {
	ctx, jsErrors := browser(t, 60*time.Second)
	home, err := os.ReadFile("../../scenarios/smart-home.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(home), "\nhomes: 1\n", "\nhomes: 3\n", 1) + `
  - kind: load
    homes: 1
    count: 4
    max_rate: 1000
    params: {payload_bytes: 64, rate: 90}
`
	file := filepath.Join(t.TempDir(), "homes.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	p := start(t, nil, "run", file, "--day", "24h", "--duration", "40s", "--listen", addr,
		"--metrics-addr", "off", "--quiet", "--ui", "127.0.0.1:0")
	url := viewURL(t, p)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 720), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "a grid of three homes", `document.querySelectorAll('#homes button').length === 3`)
	waitJS(ctx, t, "aggregated above the limit", `document.getElementById("rate").textContent.includes("rates instead of each message")`)
	waitJS(ctx, t, "rates drawn on the edges", `document.querySelectorAll('#edges line.rate').length > 0`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#homes button[data-home="2"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "home 2 opened", `document.getElementById("house-label").textContent === "Home 2" && document.querySelector('[data-node="d:2/bulb-1"]') !== null && document.querySelector('[data-node="d:1/bulb-1"]') === null`)
	if os.Getenv("FLEETSIM_KEEP_SHOT") != "" {
		shot, _ := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		_ = os.WriteFile(os.Getenv("FLEETSIM_KEEP_SHOT"), shot, 0o644)
	}
	if errs := jsErrors(); len(errs) > 0 {
		t.Errorf("JavaScript errors:\n%s", strings.Join(errs, "\n"))
	}
}

// sharedMember connects a client id that subscribes to a shared filter, until the test ends.
func sharedMember(t *testing.T, broker, id, filter string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) {}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: subscribe %s: %v", id, filter, tok.Error())
	}
}
