package runner

import (
	"context"
	"fmt"
	"time"
)

// StartLead is how long before Config.StartAt the devices start: their schedules begin at
// StartAt (the run's start, sim.Clock.WallStart), and the receivers of every shard have
// subscribed by then, so that no shard's first sends go out before another's receivers
// listen (which they would then never count). A device that only starts after StartAt,
// as in a large shard, begins its schedule when it starts.
const StartLead = time.Second

// waitStart waits, once the connections are up, until StartLead before Config.StartAt, so
// that the shards of one run start their schedules together. It says on the progress
// writer (if any) how long is left, every ProgressEvery. A start that passed more than
// StartSlack ago is an error (ErrStartPassed); one that passed less is now, and the report
// says how late.
func (r *run) waitStart(ctx context.Context) error {
	if r.cfg.StartAt.IsZero() {
		return nil
	}
	at := r.cfg.StartAt.Add(-StartLead)
	if late := time.Since(r.cfg.StartAt); late > StartSlack {
		return fmt.Errorf("%w: connected at %s, %v after --start-at %s (allowed: %v); give a later start",
			ErrStartPassed, time.Now().UTC().Format(time.RFC3339), late.Round(time.Millisecond), r.cfg.StartAt.UTC().Format(time.RFC3339Nano), StartSlack)
	}
	for {
		left := time.Until(at)
		if left <= 0 {
			return nil
		}
		if w := r.cfg.Progress; w != nil {
			fmt.Fprintf(w, "fleetsim: %d connection(s) up; starting at %s, in %v\n", len(r.conns), at.UTC().Format(time.RFC3339), left.Round(time.Second))
		}
		t := time.NewTimer(min(left, r.cfg.ProgressEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
