package mqttconn

import (
	"context"
	"errors"
	"testing"
	"time"
)

// doneToken is a paho token that has completed, with err.
type doneToken struct {
	done chan struct{}
	err  error
}

func newDoneToken(err error) *doneToken {
	t := &doneToken{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

func (t *doneToken) Wait() bool                     { return true }
func (t *doneToken) WaitTimeout(time.Duration) bool { return true }
func (t *doneToken) Done() <-chan struct{}          { return t.done }
func (t *doneToken) Error() error                   { return t.err }

// pendingToken never completes.
type pendingToken struct{ doneToken }

func (t *pendingToken) Done() <-chan struct{} { return nil }

func TestWait(t *testing.T) {
	boom := errors.New("boom")
	if err := wait(context.Background(), newDoneToken(boom), time.Second); !errors.Is(err, boom) {
		t.Errorf("completed token: %v, want its error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := wait(ctx, &pendingToken{}, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	// The timeout still fires after timers have gone back to the pool and out again.
	for range 3 {
		if err := wait(context.Background(), &pendingToken{}, 10*time.Millisecond); err == nil || err.Error() != "no answer from the broker within 10ms" {
			t.Errorf("timed out: %v", err)
		}
		if err := wait(context.Background(), newDoneToken(nil), time.Hour); err != nil {
			t.Errorf("completed token: %v", err)
		}
	}
}

// BenchmarkWait is what waiting for a publish's token costs besides the waiting.
func BenchmarkWait(b *testing.B) {
	tok, ctx := newDoneToken(nil), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := wait(ctx, tok, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
