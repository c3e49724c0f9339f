package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// The end-to-end tests of what every MQTT client must do alike (the seed's smart home,
// TLS, mutual TLS, WebSocket, wrong password and unknown CA exit codes) run once per
// transport: eachClient makes a subtest per transport, and start adds --client and
// --protocol from the subtest's name (transportOf).

// transports are the table's rows: a subtest name and the flags it adds.
var transports = []struct {
	name  string
	flags []string
}{
	{scenario.ClientPaho, []string{"--client", scenario.ClientPaho}},
	{scenario.ClientLean, []string{"--client", scenario.ClientLean}},
	{"lean-mqtt5", []string{"--client", scenario.ClientLean, "--protocol", scenario.Protocol5}},
}

// eachClient runs f once per transport, as subtests named after it.
func eachClient(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.name, f)
	}
}

// transportOf is the flags of the transport named in t's subtest path, and its name as
// the summary says it ("lean, MQTT 5"); none for the default.
func transportOf(t testing.TB) (flags []string, says string) {
	parts := strings.Split(t.Name(), "/")
	for _, tr := range transports {
		if slices.Contains(parts, tr.name) {
			says = tr.flags[1] + ", MQTT " + scenario.Protocol311
			if len(tr.flags) > 2 {
				says = tr.flags[1] + ", MQTT " + tr.flags[3]
			}
			return tr.flags, says
		}
	}
	return nil, ""
}

// says is how the summary names t's transport.
func says(t testing.TB) string {
	_, s := transportOf(t)
	return s
}

func TestClientFlag(t *testing.T) {
	if _, _, err := parseRunFlags([]string{"--client", "lean", "x.yaml"}, &strings.Builder{}); err != nil {
		t.Errorf("--client lean: %v", err)
	}
	for args, want := range map[string]string{
		"--client mosquitto":         `--client: want paho or lean, got "mosquitto"`,
		"--protocol 4":               `--protocol: want 3.1.1 or 5, got "4"`,
		"--protocol 5 --client paho": `--protocol 5 needs --client lean`,
	} {
		_, _, err := parseRunFlags(append(strings.Fields(args), "x.yaml"), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a usage error saying %s", args, err, want)
		}
	}
}
