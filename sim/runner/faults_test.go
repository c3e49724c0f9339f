package runner

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// TestBrokerRestartLosesNothingAtQoS1And2 restarts mosquitto (persistence on) in the middle
// of a stream. With persistent sessions every device reconnects by itself, its
// subscriptions resume, and QoS 1 and 2 lose nothing end to end: QoS 1 may deliver some
// twice, which is counted; QoS 2 delivers each exactly once. At QoS 0 what was lost is
// counted, however much that is.
func TestBrokerRestartLosesNothingAtQoS1And2(t *testing.T) {
	eachClient(t, testBrokerRestartLosesNothingAtQoS1And2)
}

func testBrokerRestartLosesNothingAtQoS1And2(t *testing.T) {
	m := testbroker.StartMosquitto(t, testbroker.Config{Persistence: true})
	for _, qos := range []byte{1, 2, 0} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			s := streamScenario(qos, 50, 150, false) // 3 s
			s.Duration += 3 * time.Second
			s.Connections.Persistent = true
			restart := time.AfterFunc(1500*time.Millisecond, func() {
				if err := m.Restart(); err != nil {
					t.Errorf("restart mosquitto: %v", err)
				}
			})
			defer restart.Stop()
			sum, err, mm := runMeasured(t, s, m.URL())
			if err != nil {
				t.Fatal(err)
			}
			k := byKind(t, sum, "listener", int(qos))
			sent := uint64(sum.Measured.Scheduled)
			lost := testutil.ToFloat64(mm.ConnectionsLost)
			t.Logf("QoS %d: %d sent, %+v, %v connections lost and regained", qos, sent, k.Totals, lost)
			if c := sum.Connections; lost != 2 || c.Lost != 2 || c.Episodes != 1 || c.Longest <= 0 || c.StillDown != 0 {
				t.Errorf("%v connections lost, summary %+v; want both lost once and back", lost, c)
			}
			switch qos {
			case 1:
				if k.Totals.Lost != 0 || k.Totals.Delivered != sent || sent != 150 {
					t.Errorf("QoS 1: %d sent, %+v; want all 150 delivered (duplicates allowed, and counted)", sent, k.Totals)
				}
			case 2:
				if k.Totals.Lost != 0 || k.Totals.Delivered != sent || sent != 150 || k.Totals.Duplicates != 0 {
					t.Errorf("QoS 2: %d sent, %+v; want all 150 delivered exactly once", sent, k.Totals)
				}
			case 0:
				if k.Totals.Delivered+k.Totals.Lost != sent {
					t.Errorf("QoS 0: %d sent, %+v; want every one delivered or counted lost", sent, k.Totals)
				}
			}
		})
	}
}

// TestStuckBrokerTimesOutAndStaysResponsive freezes mosquitto (it stops reading) under a
// QoS 1 stream: publishes time out and are counted as failures, and the run still stops
// as soon as it is told to.
func TestStuckBrokerTimesOutAndStaysResponsive(t *testing.T) {
	eachClient(t, testStuckBrokerTimesOutAndStaysResponsive)
}

func testStuckBrokerTimesOutAndStaysResponsive(t *testing.T) {
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	s := streamScenario(1, 50, 1000, false)
	s.Duration = 0 // until cancelled
	mm := metrics.New(prometheus.NewRegistry(), s.Name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, Config{Scenario: s, Kinds: measureKinds, Metrics: mm, Grace: time.Second, AllowGeneratorLimit: true, Client: clientOf(t), Protocol: protocolOf(t),
			Conn: mqttconn.Options{Broker: m.URL(), ConnectTimeout: time.Second, KeepAlive: 30 * time.Second}})
		done <- result{sum, err}
	}()
	time.Sleep(time.Second)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer m.Thaw()
	// Publishes time out after 1 s: wait for the first failure rather than for a time that a
	// busy machine may not keep.
	failed := func() float64 { return testutil.ToFloat64(mm.PublishFailures.WithLabelValues("streamer", "1")) }
	for deadline := time.Now().Add(20 * time.Second); failed() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	failures := failed()
	stopAsked := time.Now()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second): // the grace period is 1 s; a hang is for ever
		t.Fatal("the run did not stop within 10 s of being cancelled while the broker was stuck")
	}
	t.Logf("stopped %v after being asked; %v publishes had failed", time.Since(stopAsked), failures)
	if r.err != nil && !errors.Is(r.err, context.Canceled) {
		t.Fatal(r.err)
	}
	if failures == 0 {
		t.Errorf("no publish failed while the broker was stuck for 20 s with a 1 s timeout")
	}
	if !r.sum.Interrupted || r.sum.Kinds[len(r.sum.Kinds)-1].Failed == 0 {
		t.Errorf("summary %+v: want an interrupted run with the failures counted", r.sum.Kinds)
	}
}

// TestPublishesThatNeverWentOutAreFailuresNotLosses stops the broker for good under a QoS 1
// stream: the publishes made while it is gone wait for it, time out and are counted as
// failures. They never went out, so they are not also counted as lost: only the one that
// may have been on its way when the broker went can be.
func TestPublishesThatNeverWentOutAreFailuresNotLosses(t *testing.T) {
	eachClient(t, testPublishesThatNeverWentOutAreFailuresNotLosses)
}

func testPublishesThatNeverWentOutAreFailuresNotLosses(t *testing.T) {
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	s := streamScenario(1, 20, 200, false)
	s.Duration = 4 * time.Second
	stop := time.AfterFunc(1500*time.Millisecond, m.Stop)
	defer stop.Stop()
	mm := metrics.New(prometheus.NewRegistry(), s.Name)
	sum, err := Run(context.Background(), Config{Scenario: s, Kinds: measureKinds, Metrics: mm, Grace: time.Second, AllowGeneratorLimit: true, Client: clientOf(t), Protocol: protocolOf(t),
		Conn: mqttconn.Options{Broker: m.URL(), ConnectTimeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	k := byKind(t, sum, "listener", 1)
	failed := testutil.ToFloat64(mm.PublishFailures.WithLabelValues("streamer", "1"))
	t.Logf("%+v, %v failures", k.Totals, failed)
	if failed < 2 || k.Totals.Lost > 1 {
		t.Errorf("%v failures, %+v; want failures counted and at most the one in flight lost", failed, k.Totals)
	}
}
