package runner

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// Clock offsets between shards (DESIGN.md §9). Latency across machines is only as good as
// their clocks, and an MQTT broker stamps no time, so the shards measure their clocks
// against one of them, shard 1, over the broker itself, as NTP does: a shard publishes a
// ping with its time t1; shard 1 stamps when it got it (t2) and when it answers (t3); the
// shard notes when the answer came (t4). Then offset = ((t2-t1) + (t3-t4)) / 2 is shard 1's
// clock minus this one's, within ±(round trip - (t3-t2)) / 2 if the two legs took any
// times. Of several round trips the one with the least delay bounds it best. The shard
// then stamps and reads measured messages in shard 1's time (offset added), so latency
// between shards is measured on one clock, and the report gives the offset and its
// uncertainty. The pings ride the shard's first connection on the topics
// fleetsim/clock/RUNID/ping and fleetsim/clock/RUNID/pong/I.

// ClockEstimate is a shard's clock against the reference, shard 1.
type ClockEstimate struct {
	Shard       Shard
	Reference   bool          // this is shard 1: the run's clock
	Measured    bool          // an offset was measured (always, for the reference)
	Offset      time.Duration // the reference's clock minus this one's; added to this shard's times
	Uncertainty time.Duration // the true offset is within Offset ± Uncertainty
	RoundTrip   time.Duration // the best round trip's delay
	Samples     int
	Why         string // why not measured
}

// clockRounds is how many round trips a shard makes; clockSpacing spaces them.
const (
	clockRounds  = 16
	clockSpacing = 20 * time.Millisecond
)

func clockTopic(runID, what string) string { return "fleetsim/clock/" + runID + "/" + what }

// clockNow is this process's clock as measured messages read it: with the test hook's skew.
func (r *run) clockNow() int64 { return time.Now().UnixNano() + int64(r.cfg.ClockSkew) }

// syncClock runs the clock exchange of a shard: shard 1 starts answering pings (until
// the run closes), the others measure their offset, for up to budget. It never fails the
// run: an offset it could not measure is reported as such.
func (r *run) syncClock(ctx context.Context, budget time.Duration) *ClockEstimate {
	sh := r.cfg.Shard
	if sh.Whole() || len(r.conns) == 0 {
		return nil
	}
	est := &ClockEstimate{Shard: sh}
	if sh.Index == 1 {
		est.Reference, est.Measured = true, true
		if err := r.answerPings(ctx); err != nil {
			est.Why = "cannot answer the other shards: " + err.Error()
		}
		return est
	}
	r.measureOffset(ctx, budget, est)
	return est
}

// answerPings subscribes shard 1 to the pings and answers them from a goroutine the run
// owns, until it closes.
func (r *run) answerPings(ctx context.Context) error {
	pings := make(chan stampedMsg, 256)
	conn := r.conns[0]
	if _, err := conn.Subscribe(ctx, clockTopic(r.cfg.RunID, "ping"), 0, &clockInbox{now: r.clockNow, out: pings}); err != nil {
		return err
	}
	cctx, stop := context.WithCancel(context.Background())
	r.clockStop = stop
	r.clockDone.Go(func() {
		for {
			select {
			case <-cctx.Done():
				return
			case m := <-pings:
				from, t1, ok := strings.Cut(string(m.payload), " ")
				if !ok || strings.ContainsAny(from, "/+#") {
					continue // not a ping of fleetsim's
				}
				reply := fmt.Sprintf("%s %d %d", t1, m.at, r.clockNow())
				pctx, cancel := context.WithTimeout(cctx, time.Second)
				_ = conn.Publish(pctx, clockTopic(r.cfg.RunID, "pong/"+from), []byte(reply), 0, false)
				cancel()
			}
		}
	})
	return nil
}

// measureOffset makes up to clockRounds round trips with shard 1 and keeps the best.
func (r *run) measureOffset(ctx context.Context, budget time.Duration, est *ClockEstimate) {
	pongs := make(chan stampedMsg, clockRounds*2)
	conn := r.conns[0]
	me := strconv.Itoa(r.cfg.Shard.Index)
	if _, err := conn.Subscribe(ctx, clockTopic(r.cfg.RunID, "pong/"+me), 0, &clockInbox{now: r.clockNow, out: pongs}); err != nil {
		est.Why = "subscribe: " + err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	tick := time.NewTicker(clockSpacing)
	defer tick.Stop()
	best := time.Duration(-1)
	for est.Samples < clockRounds {
		select {
		case <-ctx.Done():
			if est.Samples == 0 {
				est.Why = fmt.Sprintf("shard 1 did not answer within %v", budget.Round(time.Millisecond))
			}
			return
		case <-tick.C:
			_ = conn.Publish(ctx, clockTopic(r.cfg.RunID, "ping"), []byte(me+" "+strconv.FormatInt(r.clockNow(), 10)), 0, false)
		case m := <-pongs:
			off, delay, ok := offsetOf(m)
			if !ok {
				continue
			}
			est.Samples++
			if best < 0 || delay < best {
				best = delay
				est.Measured, est.Offset, est.RoundTrip, est.Uncertainty = true, off, delay, (delay+1)/2
			}
		}
	}
}

// offsetOf reads a pong "t1 t2 t3" that arrived at t4: the offset and the round trip's
// delay (the time on the wire, without shard 1's own).
func offsetOf(m stampedMsg) (offset, delay time.Duration, ok bool) {
	f := strings.Fields(string(m.payload))
	if len(f) != 3 {
		return 0, 0, false
	}
	var t [3]int64
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		t[i] = v
	}
	t1, t2, t3, t4 := t[0], t[1], t[2], m.at
	delay = time.Duration((t4 - t1) - (t3 - t2))
	if delay < 0 || t4 < t1 {
		return 0, 0, false
	}
	return time.Duration(((t2 - t1) + (t3 - t4)) / 2), delay, true
}

// stampedMsg is a clock message and when it arrived, on the shard's clock.
type stampedMsg struct {
	payload []byte
	at      int64
}

// clockInbox takes clock messages from the connection's dispatcher, stamping them at
// once; it never blocks it (a full inbox drops, and the round trip is simply lost).
type clockInbox struct {
	now func() int64
	out chan stampedMsg
}

func (c *clockInbox) Deliver(m sim.Message) {
	at := c.now()
	select {
	case c.out <- stampedMsg{payload: m.Payload, at: at}:
	default:
	}
}

// stopClock ends shard 1's answering.
func (r *run) stopClock() {
	if r.clockStop != nil {
		r.clockStop()
	}
	r.clockDone.Wait()
}

// clockBudget is how long a shard may spend measuring its clock: until shortly before it
// starts its devices, at least a second, at most ten.
func (r *run) clockBudget() time.Duration {
	b := 3 * time.Second
	if at := r.cfg.StartAt; !at.IsZero() {
		b = time.Until(at.Add(-StartLead - 100*time.Millisecond))
	}
	return min(max(b, time.Second), 10*time.Second)
}

// printClock says, after the end-to-end table, how well the shards' clocks were known.
func (s *Summary) printClock(w io.Writer) {
	for _, c := range s.Clocks {
		switch {
		case c.Reference:
			fmt.Fprintf(w, "clock: shard %s is the reference\n", c.Shard)
		case c.Measured:
			fmt.Fprintf(w, "clock: shard %s offset %v ± %v from shard 1 (best of %d round trips: %v), applied to its latencies\n",
				c.Shard, c.Offset.Round(time.Microsecond), c.Uncertainty.Round(time.Microsecond), c.Samples, c.RoundTrip.Round(time.Microsecond))
		default:
			fmt.Fprintf(w, "clock: shard %s offset not measured (%s): its latencies from other shards are on its own clock\n", c.Shard, c.Why)
		}
	}
	for _, n := range s.ClockNotes {
		fmt.Fprintln(w, "clock: "+n)
	}
}

// ClockShare is the part of a latency that the clocks' uncertainty may be before merge
// flags it: beyond a tenth, the latency between those shards says more about their clocks
// than about the broker.
const ClockShare = 0.1

// mergeClocks keeps every shard's clock and flags the latency between shards whose
// clocks are known too loosely for it: cross counts what each pair of shards (publisher's,
// receiver's) delivered. A pair's uncertainty is the sum of both shards' against shard 1.
func (s *Summary) mergeClocks(rs []Report, cross map[shardPair]uint64) {
	byShard := map[int]ClockEstimate{}
	for _, r := range rs {
		for _, c := range r.Clocks {
			s.Clocks = append(s.Clocks, c)
			byShard[c.Shard.Index] = c
		}
	}
	p50 := s.Measured.All.Latency.P50
	for _, pair := range sortedPairs(cross) {
		a, b := byShard[pair.from], byShard[pair.to]
		n, u := cross[pair], a.Uncertainty+b.Uncertainty
		switch {
		case !a.Measured || !b.Measured:
			s.ClockNotes = append(s.ClockNotes, fmt.Sprintf("%d message(s) from shard %d to shard %d: latency between clocks not compared (%s)",
				n, pair.from, pair.to, cmp.Or(a.Why, b.Why, "no clock estimate in the reports")))
		case float64(u) > ClockShare*float64(p50):
			s.ClockNotes = append(s.ClockNotes, fmt.Sprintf("%d message(s) from shard %d to shard %d: the clocks are known to ±%v, %.0f%% of the latency p50 %v: read their latency with care",
				n, pair.from, pair.to, u.Round(time.Microsecond), 100*float64(u)/float64(max(p50, 1)), p50.Round(time.Microsecond)))
		}
	}
}

func sortedPairs(m map[shardPair]uint64) []shardPair {
	out := make([]shardPair, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b shardPair) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	return out
}
