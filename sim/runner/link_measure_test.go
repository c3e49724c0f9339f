package runner

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// satellite600 is the stock satellite profile with 600 ms one way (and its 0..40 ms
// jitter), without its hourly outage, so a short test is never cut by one.
func satellite600() *link.Profile {
	p := link.Profiles()["satellite"]
	p.Name, p.Latency, p.OutageEvery, p.OutageFor = "satellite-600", 600*time.Millisecond, 0, 0
	return &p
}

// TestLinkLatencyShowsInTheLatency checks that a link's latency appears in the end-to-end
// latency as it should: a 600 ms satellite hop (plus its jitter, 20 ms on average) on the
// publisher's side moves the median by 620 ms, and one on each side by twice that, within
// 2 %.
func TestLinkLatencyShowsInTheLatency(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := embedded(t)
	defer b.Close()
	run := func(pub, sub *link.Profile) time.Duration {
		s := streamScenario(0, 20, 40, false)
		s.Duration += 2 * time.Second
		s.Groups[0].Link, s.Groups[1].Link = sub, pub
		sum, err, _ := runMeasured(t, s, b.URL())
		if err != nil {
			t.Fatal(err)
		}
		k := byKind(t, sum, "listener", 0)
		if k.Totals.Delivered != 40 || k.Totals.Lost != 0 {
			t.Fatalf("totals %+v, want all 40", k.Totals)
		}
		return k.Latency.P50
	}
	base := run(nil, nil)
	sat := satellite600()
	mean := sat.Latency + sat.Jitter/2
	for _, c := range []struct {
		name     string
		pub, sub *link.Profile
		want     time.Duration
	}{
		{"publisher on satellite", sat, nil, mean},
		{"both on satellite", sat, sat, 2 * mean},
	} {
		got := run(c.pub, c.sub) - base
		t.Logf("%s: median moved by %v (base %v), want %v ± 2%%", c.name, got, base, c.want)
		if diff := got - c.want; diff < -c.want/50 || diff > c.want/50 {
			t.Errorf("%s: median moved by %v, want %v ± 2%%", c.name, got, c.want)
		}
	}
}

// TestOutageLosesNothingWithPersistentSessions cuts a publisher's link (10 ms each way)
// for 800 ms in the middle of its stream. With a persistent session at QoS 1 the client
// resends what was in flight and the broker keeps what it could not deliver, so once the
// link is back every message arrives. At QoS 0 the messages that were on the wire when the
// link went down are gone, and the report counts them: not hidden. (Publishes made while
// the link is down wait for it, at any QoS, so they arrive late rather than not at all.)
func TestOutageLosesNothingWithPersistentSessions(t *testing.T) {
	eachClient(t, testOutageLosesNothingWithPersistentSessions)
}

func testOutageLosesNothingWithPersistentSessions(t *testing.T) {
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			url := ""
			if broker == "embedded" {
				b := embedded(t)
				defer b.Close()
				url = b.URL()
			} else {
				url = testbroker.StartMosquitto(t, testbroker.Config{Persistence: true}).URL()
			}
			for _, qos := range []byte{1, 0} {
				s := streamScenario(qos, 20, 40, false) // 2 s of messages
				s.Duration += 2 * time.Second
				s.Connections.Persistent = true
				// The publisher's link goes down for 800 ms, about 1.2 s into the stream (and
				// again 1.3 s after that, once the stream is over).
				flaky := &link.Profile{Name: "flaky", Latency: 10 * time.Millisecond,
					OutageEvery: 1300 * time.Millisecond, OutageFor: 800 * time.Millisecond, OutageFixed: true}
				s.Groups[1].Link = flaky
				sum, err, _ := runMeasured(t, s, url)
				if err != nil {
					t.Fatal(err)
				}
				k := byKind(t, sum, "listener", int(qos))
				sent := uint64(sum.Measured.Scheduled)
				t.Logf("QoS %d: %d sent, %+v, %d links down, latency max %v", qos, sent, k.Totals, outages(sum), k.Latency.Max)
				if outages(sum) == 0 {
					t.Fatalf("QoS %d: the link never went down", qos)
				}
				switch qos {
				case 1:
					if k.Totals.Lost != 0 || k.Totals.Delivered != sent || sent != 40 {
						t.Errorf("QoS 1: %d sent, %+v; want all 40 sent and delivered after the outage", sent, k.Totals)
					}
				case 0:
					if k.Totals.Delivered+k.Totals.Lost != sent {
						t.Errorf("QoS 0: %d sent, %+v; want every one delivered or counted lost", sent, k.Totals)
					}
				}
			}
		})
	}
}

func outages(sum *Summary) int64 {
	var n int64
	for _, l := range sum.Links {
		n += l.Outages
	}
	return n
}
