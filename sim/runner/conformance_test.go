package runner

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// The behaviour tests that matter run over every MQTT client (and MQTT 5 on the lean one),
// as one table: a test wraps its body with eachClient, and the helpers that build a run's
// Config (runMeasured, runWith, and the tests that build theirs) take the client and
// protocol from the subtest's name with clientOf and protocolOf. Nothing is copied: every
// transport passes the same assertions.

// transports are the table's rows: a subtest name, its client and its protocol.
var transports = []struct{ name, client, protocol string }{
	{scenario.ClientPaho, scenario.ClientPaho, ""},
	{scenario.ClientLean, scenario.ClientLean, ""},
	{"lean-mqtt5", scenario.ClientLean, scenario.Protocol5},
}

// eachClient runs f once per transport, as subtests named after it.
func eachClient(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.name, f)
	}
}

// clientOf is the client a test runs over: the one its subtest path names (eachClient),
// else the default.
func clientOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	for _, tr := range transports {
		if slices.Contains(parts, tr.name) {
			return tr.client
		}
	}
	return ""
}

// protocolOf is the protocol a test runs over, as clientOf.
func protocolOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	for _, tr := range transports {
		if slices.Contains(parts, tr.name) {
			return tr.protocol
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
		t.Run("inner", func(t *testing.T) { seen[clientOf(t)+" "+protocolOf(t)] = true })
	})
	if !seen["paho "] || !seen["lean "] || !seen["lean 5"] || len(seen) != 3 {
		t.Errorf("transports seen %v, want paho, lean and lean with MQTT 5", seen)
	}
}

// TestCorruptFramesAreDroppedCountedAndReconnected garbles every 40th message the broker
// sends the listener. The lean client cannot decode it: it drops the connection, counts
// it, and reconnects; what the drops cost is counted lost, never hidden, and nothing
// panics. (paho's reader gives such bytes no cause of its own, so only lean's count is
// checked; both must survive.)
func TestCorruptFramesAreDroppedCountedAndReconnected(t *testing.T) {
	eachClient(t, testCorruptFramesAreDroppedCountedAndReconnected)
}

func testCorruptFramesAreDroppedCountedAndReconnected(t *testing.T) {
	b, proxy := viaProxy(t)
	defer b.Close()
	defer proxy.Close()
	proxy.SetRules(testbroker.Downstream, testbroker.Rules{CorruptEvery: 40})
	s := streamScenario(0, 100, 200, false)
	sum, err, m := runMeasured(t, s, proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(t, sum, "listener", 0)
	st := proxy.Stats(testbroker.Downstream)
	lost, bad := testutil.ToFloat64(m.ConnectionsLost), testutil.ToFloat64(m.Malformed)
	t.Logf("%s: proxy corrupted %d; %v connections lost, %v malformed; %+v", clientOf(t), st.Corrupted, lost, bad, k.Totals)
	if st.Corrupted == 0 {
		t.Fatal("the proxy corrupted nothing")
	}
	if k.Totals.Delivered+k.Totals.Lost != uint64(sum.Measured.Scheduled) || k.Totals.Delivered == 0 {
		t.Errorf("%d sent, %+v: want every one delivered or counted lost", sum.Measured.Scheduled, k.Totals)
	}
	if c := sum.Connections; c.StillDown != 0 {
		t.Errorf("connections %+v: want every one back", c)
	}
	if clientOf(t) == scenario.ClientLean && (bad != float64(st.Corrupted) || lost < bad) {
		t.Errorf("%d corrupted, %v connections dropped as malformed, %v lost: want each corruption dropped and counted", st.Corrupted, bad, lost)
	}
}

func TestMQTT5NeedsTheLeanClient(t *testing.T) {
	s := streamScenario(1, 10, 1, false)
	s.Connections.Protocol = scenario.Protocol5
	cfg := Config{Scenario: s, Protocol: scenario.Protocol5}
	if c, p := cfg.client(), cfg.protocol(); c != scenario.ClientLean || p != scenario.Protocol5 {
		t.Errorf("MQTT 5 without a client: %s %s, want lean 5", c, p)
	}
	cfg.Client = scenario.ClientPaho
	if err := cfg.checkTransport(); !errors.Is(err, ErrProtocol) {
		t.Errorf("MQTT 5 on paho: %v, want ErrProtocol", err)
	}
}
