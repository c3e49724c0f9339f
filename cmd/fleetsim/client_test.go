package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// The end-to-end tests of what both MQTT clients must do alike (the seed's smart home,
// TLS, mutual TLS, WebSocket, wrong password and unknown CA exit codes) run once per
// client: eachClient makes a subtest per client, and start adds --client from the
// subtest's name (clientOf).

// eachClient runs f once per MQTT client, as parallel subtests named after it.
func eachClient(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, c := range scenario.Clients {
		t.Run(c, f)
	}
}

// clientOf is the client named in t's subtest path, or "" for the default.
func clientOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	for _, c := range scenario.Clients {
		if slices.Contains(parts, c) {
			return c
		}
	}
	return ""
}

func TestClientFlag(t *testing.T) {
	if _, _, err := parseRunFlags([]string{"--client", "lean", "x.yaml"}, &strings.Builder{}); err != nil {
		t.Errorf("--client lean: %v", err)
	}
	_, _, err := parseRunFlags([]string{"--client", "mosquitto", "x.yaml"}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), `--client: want paho or lean, got "mosquitto"`) {
		t.Errorf("--client mosquitto: %v, want a usage error", err)
	}
}
