package runner

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// The behaviour tests that matter run over every MQTT client, as one table: a test wraps
// its body with eachClient, and the helpers that build a run's Config (runMeasured,
// runWith, and the tests that build theirs) take the client from the subtest's name with
// clientOf. Nothing is copied: paho and lean pass the same assertions.

// eachClient runs f once per MQTT client, as subtests named after it.
func eachClient(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, c := range scenario.Clients {
		t.Run(c, f)
	}
}

// clientOf is the client a test runs over: the one named in its subtest path (eachClient),
// else the default.
func clientOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	for _, c := range scenario.Clients {
		if slices.Contains(parts, c) {
			return c
		}
	}
	return ""
}

func TestClientOfReadsTheSubtest(t *testing.T) {
	if c := clientOf(t); c != "" {
		t.Errorf("top level: client %q, want the default", c)
	}
	seen := map[string]bool{}
	eachClient(t, func(t *testing.T) {
		t.Run("inner", func(t *testing.T) { seen[clientOf(t)] = true })
	})
	if !seen[scenario.ClientPaho] || !seen[scenario.ClientLean] || len(seen) != 2 {
		t.Errorf("clients seen %v, want paho and lean", seen)
	}
}
