package runner

import (
	"context"
	"fmt"
	"time"
)

// waitStart waits, once the connections are up, until Config.StartAt, so that the shards
// of one run start their schedules together. It says on the progress writer (if any) how
// long is left, every ProgressEvery. A start that passed more than StartSlack ago is an
// error (ErrStartPassed); one that passed less is now, and the report says how late.
func (r *run) waitStart(ctx context.Context) error {
	at := r.cfg.StartAt
	if at.IsZero() {
		return nil
	}
	if late := time.Since(at); late > StartSlack {
		return fmt.Errorf("%w: connected at %s, %v after --start-at %s (allowed: %v); give a later start",
			ErrStartPassed, time.Now().UTC().Format(time.RFC3339), late.Round(time.Millisecond), at.UTC().Format(time.RFC3339Nano), StartSlack)
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
