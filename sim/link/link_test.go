package link

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestOutageSchedule runs a flaky link for ten fake hours and checks that its outages follow
// the exponential schedule drawn from its rng, cut connections and refuse dials.
func TestOutageSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Profile{Name: "flaky", OutageEvery: 10 * time.Minute, OutageFor: 30 * time.Second}
		const seed = 1
		l := NewLink(p, rand.New(rand.NewPCG(seed, seed)))
		defer l.Close()
		// Replay the schedule from the same seed.
		replay := rand.New(rand.NewPCG(seed, seed))
		next := func() time.Duration { return time.Duration(replay.ExpFloat64() * float64(p.OutageEvery)) }
		first := next()
		const horizon = 10 * time.Hour
		want, at := int64(0), first
		for at <= horizon {
			want++
			at += p.OutageFor + next()
		}

		a, b := net.Pipe()
		defer b.Close()
		c := l.Wrap(a)
		defer c.Close()
		readErr := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			readErr <- err
		}()

		time.Sleep(first - time.Millisecond)
		synctest.Wait()
		if !l.Up() || len(readErr) != 0 {
			t.Fatalf("link down before its first outage at %v", first)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if l.Up() {
			t.Fatalf("link up at its first outage (%v)", first)
		}
		if err := <-readErr; !errors.Is(err, ErrLinkDown) {
			t.Errorf("read on a cut connection: %v, want ErrLinkDown", err)
		}
		if _, err := b.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("peer of a cut connection: %v, want EOF", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, ErrLinkDown) {
			t.Errorf("write on a cut connection: %v, want ErrLinkDown", err)
		}
		// Refused before any network I/O, so this works in the bubble.
		if _, err := l.Dial(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ErrLinkDown) {
			t.Errorf("Dial while down: %v, want ErrLinkDown", err)
		}
		if c2 := l.Wrap(nopConn{}); !errors.Is(c2.stateErr(), ErrLinkDown) {
			t.Errorf("Wrap while down: %v, want a cut conn", c2.stateErr())
		} else {
			c2.Close()
		}
		time.Sleep(p.OutageFor)
		synctest.Wait()
		if !l.Up() {
			t.Fatalf("link still down after %v", p.OutageFor)
		}
		time.Sleep(horizon - first - p.OutageFor)
		synctest.Wait()
		if got := l.Stats().Outages; got != want {
			t.Errorf("%d outages in %v, want %d", got, horizon, want)
		}
		t.Logf("%d outages in %v (mean interval %v)", want, horizon, p.OutageEvery)
	})
}

func TestFixedOutageSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Profile{Name: "scheduled", OutageEvery: 10 * time.Second, OutageFor: 2 * time.Second, OutageFixed: true}
		begin := time.Now()
		l := NewLink(p, nil)
		defer l.Close()
		// Down at 10 s for 2 s, at 22 s for 2 s, ...: up just before each, down just after.
		for _, at := range []time.Duration{10 * time.Second, 22 * time.Second, 34 * time.Second} {
			time.Sleep(at - time.Millisecond - time.Since(begin))
			synctest.Wait()
			if !l.Up() {
				t.Fatalf("down before %v", at)
			}
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			if l.Up() {
				t.Fatalf("up just after %v", at)
			}
		}
		if got := l.Stats().Outages; got != 3 {
			t.Errorf("%d outages, want 3", got)
		}
	})
}

// nopConn is a net.Conn that does nothing, for connections that are never used.
type nopConn struct{ net.Conn }

func (nopConn) Close() error         { return nil }
func (nopConn) LocalAddr() net.Addr  { return nil }
func (nopConn) RemoteAddr() net.Addr { return nil }

// TestDialOutage dials a real listener through a link, takes the link down, and checks that
// the connection is cut, dials fail while down and succeed after.
func TestDialOutage(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(s, s); s.Close() })
		}
	})
	const latency = 20 * time.Millisecond
	l := NewLink(Profile{Latency: latency}, nil)
	defer l.Close()
	ctx := context.Background()

	start := time.Now()
	c, err := l.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*latency {
		t.Errorf("Dial took %v, want at least a round trip (%v)", d, 2*latency)
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}

	const outage = 300 * time.Millisecond
	c.(*Conn).Down(outage)
	downAt := time.Now()
	if _, err := c.Read(buf); !errors.Is(err, ErrLinkDown) {
		t.Errorf("Read after Down: %v, want ErrLinkDown", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close of a cut conn: %v", err)
	}
	if _, err := l.Dial(ctx, "tcp", ln.Addr().String()); !errors.Is(err, ErrLinkDown) {
		t.Errorf("Dial while down: %v, want ErrLinkDown", err)
	}
	time.Sleep(outage - time.Since(downAt) + 10*time.Millisecond)
	c, err = l.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial after the outage: %v", err)
	}
	c.Close()
	if s := l.Stats(); s.Outages != 1 || s.BytesUp != 2 || s.BytesDown != 2 {
		t.Errorf("Stats = %+v, want 1 outage and 2 bytes each way", s)
	}
	l.Close()
	if _, err := l.Dial(ctx, "tcp", ln.Addr().String()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v, want net.ErrClosed", err)
	}
}
