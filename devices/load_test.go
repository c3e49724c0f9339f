package devices

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// dues returns the due times of the scheduled publishes so far, relative to start.
func (f *fakeIO) duesSince(start time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, d := range f.dues {
		out = append(out, d.Sub(start))
	}
	return out
}

func TestLoadKeepsItsScheduleAndPayloadSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("load", "load-1")
		cfg.MaxRate = 100
		f := newFake()
		start := time.Now()
		run(t, build(t, cfg, func(p *LoadParams) { p.Rate = 10; p.PayloadBytes = 100 }), f)
		time.Sleep(time.Second + 50*time.Millisecond)
		synctest.Wait()
		dues := f.duesSince(start)
		if len(dues) == 0 {
			t.Fatal("nothing sent")
		}
		offset := dues[0]
		if want := int((time.Second+50*time.Millisecond-offset)/(100*time.Millisecond)) + 1; len(dues) != want {
			t.Fatalf("%d sends in 1.05 s at 10/s starting at %v, want %d: %v", len(dues), offset, want, dues)
		}
		if offset < 0 || offset >= 100*time.Millisecond {
			t.Errorf("first send at %v; want it spread within one interval (100ms)", offset)
		}
		for i, d := range dues {
			if want := offset + time.Duration(i)*100*time.Millisecond; d != want {
				t.Errorf("send %d due at %v, want %v", i, d, want)
			}
		}
		pubs, states, _, _ := f.snapshot()
		if p := pubs[0].Payload; len(p) != 100 || !sim.Reserved(p) || pubs[0].Topic != cfg.Topic || pubs[0].QoS != 1 {
			t.Errorf("payload %d bytes on %s (reserved %v), want 100 reserved bytes on %s", len(p), pubs[0].Topic, sim.Reserved(p), cfg.Topic)
		}
		if !slices.Equal(states, []string{"sending"}) {
			t.Errorf("states %q", states)
		}
	})
}

// slowIO is a fake whose publishes take a while, like a stalled broker.
type slowIO struct {
	*fakeIO
	delay time.Duration
}

func (s slowIO) PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error {
	time.Sleep(s.delay)
	return s.fakeIO.PublishAt(ctx, due, topic, payload, qos, retained)
}

func TestLoadDoesNotSlipWhenBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("load", "load-1")
		f := slowIO{newFake(), 350 * time.Millisecond}
		start := time.Now()
		d := build(t, cfg, func(p *LoadParams) { p.Rate = 10 })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx, f) }()
		time.Sleep(2 * time.Second)
		cancel()
		<-done
		dues := f.duesSince(start)
		// Each send takes 350 ms, so about 6 got out in 2 s; their due times still step by
		// 100 ms: the schedule is kept, the lateness is the engine's to measure.
		if len(dues) < 5 {
			t.Fatalf("only %d sends", len(dues))
		}
		for i := 1; i < len(dues); i++ {
			if step := dues[i] - dues[i-1]; step != 100*time.Millisecond {
				t.Errorf("due times %v and %v are %v apart, want 100ms", dues[i-1], dues[i], step)
			}
		}
	})
}

func TestLoadPhases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("load", "load-1")
		cfg.MaxRate = 1000
		f := newFake()
		start := time.Now()
		run(t, build(t, cfg, func(p *LoadParams) {
			p.Phases = []LoadPhase{
				{For: time.Second, Rate: 10},
				{For: time.Second},                  // a pause
				{For: time.Second, From: 0, To: 20}, // ramp: 10 in the second on average
			}
		}), f)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		dues := f.duesSince(start)
		var first, second, third int
		for _, d := range dues {
			switch {
			case d < time.Second+dues[0]:
				first++
			case d < 2*time.Second+dues[0]:
				second++
			default:
				third++
			}
		}
		if first != 10 || second != 0 || third != 10 {
			t.Errorf("sends per phase %d, %d, %d; want 10, 0, 10 (dues %v)", first, second, third, dues)
		}
		_, states, _, _ := f.snapshot()
		if !slices.Equal(states, []string{"sending", "done"}) {
			t.Errorf("states %q, want sending then done", states)
		}
	})
}

func TestLoadParamErrors(t *testing.T) {
	cases := []struct {
		name  string
		set   func(*LoadParams)
		field string
		want  string
	}{
		{"payload too small", func(p *LoadParams) { p.PayloadBytes = 10; p.Rate = 1 }, "payload_bytes", "outside 23..1048576"},
		{"negative rate", func(p *LoadParams) { p.Rate = -1 }, "rate", "outside (0, 100000]"},
		{"no schedule", func(p *LoadParams) {}, "rate", "needs a rate, phases"},
		{"above max_rate", func(p *LoadParams) { p.Rate = 50 }, "rate", "above the group's max_rate 10/s"},
		{"rate and phases", func(p *LoadParams) { p.Rate = 1; p.Phases = []LoadPhase{{For: time.Second, Rate: 1}} }, "rate", "not both"},
		{"phase without time", func(p *LoadParams) { p.Phases = []LoadPhase{{Rate: 1}} }, "phases", "[0]: for: want a positive duration"},
		{"phase rate and ramp", func(p *LoadParams) { p.Phases = []LoadPhase{{For: time.Second, Rate: 1, To: 2}} }, "phases", "not both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config("load", "load-1")
			cfg.Period, cfg.MaxRate = 0, 10
			k := Kinds()["load"]
			p := k.NewParams().(*LoadParams)
			c.set(p)
			_, err := k.Build(cfg, p)
			var pe *sim.ParamError
			if !errors.As(err, &pe) || pe.Field != c.field || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want a ParamError on %s saying %q", err, c.field, c.want)
			}
		})
	}
}

func TestSinkSubscribesAndDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config("sink", "backend-1")
		f := newFake()
		run(t, build(t, cfg, func(p *SinkParams) { p.Subscribe = []string{"$share/backend/{prefix}/load/#", "other/+"} }), f)
		for range 300 {
			f.inbox <- sim.Message{Topic: "home/1/load/x", Payload: []byte("x")}
		}
		synctest.Wait()
		if len(f.inbox) != 0 {
			t.Errorf("%d messages left in the inbox", len(f.inbox))
		}
		f.mu.Lock()
		subs := slices.Clone(f.subs)
		f.mu.Unlock()
		if want := []string{"$share/backend/home/1/load/#", "other/+"}; !slices.Equal(subs, want) {
			t.Errorf("subscribed %q, want %q", subs, want)
		}
	})
	k := Kinds()["sink"]
	p := k.NewParams().(*SinkParams)
	p.Subscribe = []string{"a/#/b"}
	if _, err := k.Build(config("sink", "s"), p); err == nil {
		t.Error("a bad filter was accepted")
	}
}
