package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

var classroom = map[string]User{
	"alice": {Password: "pw-alice"},
	"bob":   {Password: "pw-bob"},
	"teach": {Password: "pw-teach", Teacher: true},
}

// login connects a paho client with a username and password; the client is disconnected
// when the test ends. It returns the connect error instead of failing.
func login(t *testing.T, url, id, user, password string) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("connect as %q: timed out", user)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func mustLogin(t *testing.T, url, id, user, password string) paho.Client {
	t.Helper()
	c, err := login(t, url, id, user, password)
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	return c
}

// expectOnly reads the next message from ch and fails unless it is on topic want.
func expectOnly(t *testing.T, ch <-chan paho.Message, want string) {
	t.Helper()
	if m := receive(t, ch); m.Topic() != want {
		t.Fatalf("got a message on %q, want %q (a refused publish got through)", m.Topic(), want)
	}
}

func TestAuthRefusesBadCredentials(t *testing.T) {
	b := start(t, Options{Users: classroom})
	for _, c := range []struct{ user, password string }{
		{"mallory", "pw-alice"},
		{"alice", "pw-bob"},
		{"alice", ""},
		{"", ""},
	} {
		if _, err := login(t, b.URL(), "bad", c.user, c.password); err == nil {
			t.Errorf("connect as %q with password %q succeeded, want refused", c.user, c.password)
		}
	}
	mustLogin(t, b.URL(), "ok", "alice", "pw-alice")
}

func TestAuthStudentACL(t *testing.T) {
	b := start(t, Options{Users: classroom})
	teacher := mustLogin(t, b.URL(), "teacher", "teach", "pw-teach")
	alice := mustLogin(t, b.URL(), "alice", "alice", "pw-alice")

	// A student reads everything, including what the teacher publishes.
	aliceSees := subscribe(t, alice, "#", 1)
	wait(t, teacher.Publish("lesson/1", 1, false, "hello"), "teacher publish")
	expectOnly(t, aliceSees, "lesson/1")

	teacherSees := subscribe(t, teacher, "#", 1)
	// Allowed: device command topics and the student's own topics. Refused (QoS 0 so that
	// the broker drops them rather than disconnecting alice): forged device state and
	// another student's topics. Each refused publish is followed by an allowed one on the
	// same connection, which the broker handles in order, so when that one arrives the
	// refused one would have arrived before it.
	for _, c := range []struct {
		topic string
		ok    bool
	}{
		{"home/1/heater/setpoint", true},
		{"home/1/bulb/bulb-1/state", false},
		{"students/alice/x", true},
		{"students/bob/x", false},
		{"home/1/heater/heater-1/setpoint", true},
		{"home/1/bulb/bulb-1/set", true},
		{"home/1/phone/phone-1/position", false},
		{"students/alice", true},
	} {
		wait(t, alice.Publish(c.topic, 0, false, "30"), "alice publish "+c.topic)
		if c.ok {
			expectOnly(t, teacherSees, c.topic)
		}
	}
	wait(t, alice.Publish("students/alice/done", 1, false, "done"), "alice publish done")
	expectOnly(t, teacherSees, "students/alice/done")
	select {
	case m := <-teacherSees:
		t.Fatalf("unexpected message on %q", m.Topic())
	case <-time.After(300 * time.Millisecond):
	}
	if !alice.IsConnectionOpen() {
		t.Error("alice was disconnected")
	}
}

func TestAuthInternalCredentials(t *testing.T) {
	b := start(t, Options{Users: classroom})
	user, password := b.InternalCredentials()
	if user == "" || len(password) != 32 {
		t.Fatalf("InternalCredentials() = %q and a %d-character password, want a user and 32 hex digits", user, len(password))
	}
	if _, ok := classroom[user]; ok {
		t.Fatalf("internal user %q collides with a class user", user)
	}
	teacher := mustLogin(t, b.URL(), "teacher", "teach", "pw-teach")
	sees := subscribe(t, teacher, "#", 1)
	internal := mustLogin(t, b.URL(), "internal", user, password)
	wait(t, internal.Publish("home/1/bulb/bulb-1/state", 1, false, `{"state":"on"}`), "internal publish")
	expectOnly(t, sees, "home/1/bulb/bulb-1/state")

	// Without users there are no internal credentials and anyone may connect.
	open := start(t, Options{})
	if u, p := open.InternalCredentials(); u != "" || p != "" {
		t.Errorf("InternalCredentials() without users = %q, %q", u, p)
	}
	connect(t, open.URL(), "anonymous")
}

func TestAnonymousOnlyOnLoopback(t *testing.T) {
	for _, o := range []Options{
		{Addr: "0.0.0.0:0"},
		{Addr: ":0"},
		{Addr: "127.0.0.1:0", WSAddr: "0.0.0.0:0"},
	} {
		b, err := Start(o)
		if err == nil {
			b.Close()
			t.Errorf("Start(%+v) without users succeeded, want an error", o)
			continue
		}
		if !errors.Is(err, ErrAnonymousOffLoopback) || !strings.Contains(err.Error(), "anyone on the network could connect and publish") {
			t.Errorf("Start(%+v): %v", o, err)
		}
	}
	b := start(t, Options{Addr: "0.0.0.0:0", AllowAnonymousOffLoopback: true})
	connect(t, b.URL(), "anonymous")
	b = start(t, Options{Addr: "0.0.0.0:0", Users: classroom})
	mustLogin(t, b.URL(), "alice", "alice", "pw-alice")

	if _, err := Start(Options{Addr: "127.0.0.1:0", Users: map[string]User{"a/b": {Password: "x"}}}); err == nil {
		t.Error("a username with '/' was accepted")
	}
}

func TestStudentWritable(t *testing.T) {
	for _, c := range []struct {
		user, topic string
		want        bool
	}{
		{"alice", "students/alice/x", true},
		{"alice", "students/alice/a/b", true},
		{"alice", "students/bob/x", false},
		{"alice", "students/alicex/x", false},
		{"alice", "home/1/heater/setpoint", true},
		{"alice", "home/1/heater/heater-1/setpoint", true},
		{"alice", "home/1/vacuum/vacuum-1/set", true},
		{"alice", "home/1/bulb/bulb-1/state", false},
		{"alice", "home/1/bulb/bulb-1/telemetry", false},
		{"alice", "lesson/1", false},
	} {
		if got := StudentWritable(c.user, c.topic); got != c.want {
			t.Errorf("StudentWritable(%q, %q) = %v, want %v", c.user, c.topic, got, c.want)
		}
	}
}
