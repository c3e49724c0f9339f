package mqttconn

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// TestReconnectStorm restarts mosquitto under many connected clients and checks that they
// all come back by themselves, spread out over time rather than in one burst.
//
// It runs 500 clients (about 11 goroutines each) with a reconnect cap of 1 s and the
// broker away for 500 ms, quick under -race. The 5,000, or any other size, cap
// or time away, run without -race with
//
//	FLEETSIM_STORM_CLIENTS=5000 FLEETSIM_STORM_CAP=10s FLEETSIM_STORM_AWAY=3s \
//		go test -run TestReconnectStorm -v ./sim/mqttconn/
//
// It reports, counted at the clients (OnReconnectAttempt), the time from the broker's
// return until every client is back, and the peak number of connects in a 100 ms window.
func TestReconnectStorm(t *testing.T) {
	n := envInt(t, "FLEETSIM_STORM_CLIENTS", 500)
	ceiling := envDuration(t, "FLEETSIM_STORM_CAP", time.Second)
	away := envDuration(t, "FLEETSIM_STORM_AWAY", 500*time.Millisecond) // the broker's time down
	const (
		base    = 100 * time.Millisecond
		window  = 100 * time.Millisecond
		dialers = 32
	)
	defer goleak.VerifyNone(t)
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	defer m.Stop()

	type attempt struct {
		at time.Time
		ok bool
	}
	var (
		ups, downs atomic.Int64
		mu         sync.Mutex
		attempts   []attempt
	)
	opts := Options{
		Broker:         m.URL(),
		ConnectTimeout: 10 * time.Second,
		ReconnectBase:  base,
		ReconnectCap:   ceiling,
		OnChange: func(up bool, _ error) {
			if up {
				ups.Add(1)
			} else {
				downs.Add(1)
			}
		},
		OnReconnectAttempt: func(err error) {
			mu.Lock()
			attempts = append(attempts, attempt{time.Now(), err == nil})
			mu.Unlock()
		},
	}
	conns := make([]*Conn, n)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range conns {
			if c != nil {
				wg.Go(c.Close)
			}
		}
		wg.Wait()
	}()
	begin := time.Now()
	errs := make(chan error, n)
	sem := make(chan struct{}, dialers)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := Dial(context.Background(), opts, fmt.Sprintf("storm-%d", i))
			conns[i] = c
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Logf("%d clients connected in %v; %d goroutines", n, time.Since(begin).Round(time.Millisecond), runtime.NumGoroutine())

	m.Stop()
	waitFor(t, "every client to see the broker go", func() bool { return downs.Load() == int64(n) })
	time.Sleep(away) // the clients retry meanwhile
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitFor(t, "every client to reconnect", func() bool { return ups.Load() == 2*int64(n) })
	all := time.Since(back)

	mu.Lock()
	defer mu.Unlock()
	var failed, connected int
	perWindow := map[int]int{}
	for _, a := range attempts {
		if !a.ok {
			failed++
			continue
		}
		connected++
		perWindow[int(a.at.Sub(back)/window)]++
	}
	peak, peakAt := 0, 0
	for w, k := range perWindow {
		if k > peak {
			peak, peakAt = k, w
		}
	}
	t.Logf("%d clients, reconnect backoff %v…%v, broker away %v: all back %v after it returned; "+
		"peak %d connects per %v (in window %d), %d attempts refused while it was away",
		n, base, ceiling, away, all.Round(time.Millisecond), peak, window, peakAt, failed)
	if connected != n {
		t.Errorf("%d successful reconnect attempts for %d clients", connected, n)
	}
	for i, c := range conns {
		if !c.Up() {
			t.Fatalf("client %d is not up", i)
		}
	}
	// Full jitter over windows of 400 ms and more by the time the broker returns puts
	// about a fifth of the clients in the busiest 100 ms (simulated: at most 26% in 200
	// runs); one burst would put them all there.
	if peak > n/3 {
		t.Errorf("peak of %d connects in %v for %d clients: not spread out", peak, window, n)
	}
}

// waitFor polls cond every 10 ms for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return v
}
