package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// TestHardContextCutsTheGrace calls run itself with the two contexts main gets from
// signalContext: against a broker that stopped answering, cancelling ctx leaves the run
// waiting out its grace period for the messages in flight, and cancelling hard then ends
// it at once, with its summary.
func TestHardContextCutsTheGrace(t *testing.T) {
	t.Parallel()
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	ctx, stop := context.WithCancel(context.Background())
	hard, cut := context.WithCancel(context.Background())
	defer stop()
	defer cut()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, hard, []string{"run", loadScenario(t, "0s", 20), "--broker", m.URL(), "--metrics-addr", "off", "--quiet", "--allow-generator-limit",
			"--connect-timeout", "30s", "--grace", "1m"}, &stdout, &stderr, func(string) string { return "" })
	}()
	time.Sleep(2 * time.Second) // connected and publishing
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer m.Thaw()
	time.Sleep(500 * time.Millisecond) // messages in flight that will not arrive
	stop()
	select {
	case err := <-done:
		t.Fatalf("run ended (%v) before its grace period with messages in flight\nstderr:\n%s", err, &stderr)
	case <-time.After(2 * time.Second):
	}
	cut()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("run still going 10 s after hard was cancelled\nstderr:\n%s", &stderr)
	}
	if out := stdout.String(); !strings.Contains(out, "fleetsim summary: e2e-load") || !strings.Contains(out, "interrupted") {
		t.Errorf("no interrupted summary:\n%s", out)
	}
}
