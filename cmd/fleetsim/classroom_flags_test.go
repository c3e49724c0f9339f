package main

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/classroom"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// The default --ui address may be taken (another run, a parallel test): the run goes on
// without a view and says so. An address given with --ui must bind.
func TestBusyViewAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var warn strings.Builder
	v := newView(classroom.Options{})
	err = v.serve(&runFlags{ui: ln.Addr().String()}, b, nil, connOptsForTest(), &warn)
	v.close()
	if err != nil || !strings.Contains(warn.String(), "classroom view not served") {
		t.Errorf("default address busy: err %v, said %q", err, warn.String())
	}

	v = newView(classroom.Options{})
	err = v.serve(&runFlags{ui: ln.Addr().String(), uiSet: true}, b, nil, connOptsForTest(), io.Discard)
	v.close()
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("--ui given and busy: err %v, want EADDRINUSE", err)
	}
}

func TestViewOffLoopbackNeedsUsers(t *testing.T) {
	users := map[string]broker.User{"alice": {Password: "x"}}
	for _, c := range []struct {
		addr  string
		users map[string]broker.User
		anon  bool
		ok    bool
	}{
		{"127.0.0.1:8080", nil, false, true},
		{"[::1]:8080", nil, false, true},
		{"0.0.0.0:8080", nil, false, false},
		{"0.0.0.0:8080", users, false, true},
		{"0.0.0.0:8080", nil, true, true},
		{"nonsense", nil, false, false},
	} {
		if err := checkUIAddr(c.addr, c.users, c.anon); (err == nil) != c.ok {
			t.Errorf("%s users=%v anonymous=%v: %v", c.addr, c.users != nil, c.anon, err)
		}
	}
}

func connOptsForTest() mqttconn.Options { return mqttconn.Options{} }

func TestWatchFilter(t *testing.T) {
	for prefix, want := range map[string]string{"home/{home}": "home/#", "site/a/{home}": "site/a/#", "{home}": "#", "": "#", "x": "#"} {
		if got := watchFilter(prefix); got != want {
			t.Errorf("watchFilter(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// The view's counters are on the run's registry, and pass Prometheus's lint.
func TestViewMetrics(t *testing.T) {
	reg, _ := newRegistry("s")
	v := newView(classroom.Options{})
	defer v.close()
	v.register(reg, "s")
	problems, err := testutil.GatherAndLint(reg, "fleetsim_classroom_viewers", "fleetsim_classroom_events_dropped_total")
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	if n, err := testutil.GatherAndCount(reg, "fleetsim_classroom_viewers", "fleetsim_classroom_events_dropped_total"); err != nil || n != 3 {
		t.Errorf("%d series (%v), want 3", n, err)
	}
}
