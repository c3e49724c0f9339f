package measure

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func seqs(from, to uint64) []uint64 {
	var s []uint64
	for q := from; q <= to; q++ {
		s = append(s, q)
	}
	return s
}

func cat(parts ...[]uint64) []uint64 {
	var s []uint64
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

func TestTrackerTable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []uint64
		outcomes []Outcome // checked when not nil
		snap     Totals    // before Finish (Streams is filled in)
		fin      Totals    // after Finish
	}{
		{
			name:     "in order",
			in:       seqs(1, 5),
			outcomes: []Outcome{InOrder, InOrder, InOrder, InOrder, InOrder},
			snap:     Totals{Delivered: 5},
			fin:      Totals{Delivered: 5},
		},
		{
			name:     "duplicate",
			in:       []uint64{1, 2, 2, 3, 1},
			outcomes: []Outcome{InOrder, InOrder, Duplicate, InOrder, Duplicate},
			snap:     Totals{Delivered: 3, Duplicates: 2},
			fin:      Totals{Delivered: 3, Duplicates: 2},
		},
		{
			name:     "reorder within window",
			in:       []uint64{1, 3, 2, 4},
			outcomes: []Outcome{InOrder, AfterGap, OutOfOrder, InOrder},
			snap:     Totals{Delivered: 4, OutOfOrder: 1, Gaps: 1},
			fin:      Totals{Delivered: 4, OutOfOrder: 1, Gaps: 1},
		},
		{
			name:     "late fill is out of order, then its repeat is a duplicate",
			in:       []uint64{1, 5, 3, 3},
			outcomes: []Outcome{InOrder, AfterGap, OutOfOrder, Duplicate},
			snap:     Totals{Delivered: 3, OutOfOrder: 1, Duplicates: 1, Gaps: 1, Missing: 2},
			fin:      Totals{Delivered: 3, OutOfOrder: 1, Duplicates: 1, Gaps: 1, Lost: 2},
		},
		{
			name:     "gap never filled is lost only at Finish",
			in:       []uint64{1, 2, 6, 7},
			outcomes: []Outcome{InOrder, InOrder, AfterGap, InOrder},
			snap:     Totals{Delivered: 4, Gaps: 1, Missing: 3},
			fin:      Totals{Delivered: 4, Gaps: 1, Lost: 3},
		},
		{
			name:     "first messages missing",
			in:       []uint64{3, 4},
			outcomes: []Outcome{AfterGap, InOrder},
			snap:     Totals{Delivered: 2, Gaps: 1, Missing: 2},
			fin:      Totals{Delivered: 2, Gaps: 1, Lost: 2},
		},
		{
			name: "gap slides out of the window: lost, and a late arrival is too late",
			// 2 is missing; 1026 pushes it out of (2, 1026]; then 2 arrives.
			in:   cat([]uint64{1}, seqs(3, Window+2), []uint64{2}),
			snap: Totals{Delivered: Window + 1, Gaps: 1, Lost: 1, TooLate: 1},
			fin:  Totals{Delivered: Window + 1, Gaps: 1, Lost: 1, TooLate: 1},
		},
		{
			name: "gap at the window's edge is still fillable",
			in:   cat([]uint64{1}, seqs(3, Window+1), []uint64{2}),
			snap: Totals{Delivered: Window + 1, Gaps: 1, OutOfOrder: 1},
			fin:  Totals{Delivered: Window + 1, Gaps: 1, OutOfOrder: 1},
		},
		{
			name:     "huge jump",
			in:       []uint64{1, 1_000_000_001, 1_000_000_000, 5},
			outcomes: []Outcome{InOrder, AfterGap, OutOfOrder, TooLate},
			// 2 .. 1e9 are 999,999,999 seqs; 1e9 arrives late; of the rest
			// Window-2 are still within the window.
			snap: Totals{Delivered: 3, Gaps: 1, OutOfOrder: 1, Missing: Window - 2, Lost: 999_999_998 - (Window - 2), TooLate: 1},
			fin:  Totals{Delivered: 3, Gaps: 1, OutOfOrder: 1, Lost: 999_999_998, TooLate: 1},
		},
		{
			name:     "jump of exactly the window",
			in:       []uint64{1, 1 + Window},
			outcomes: []Outcome{InOrder, AfterGap},
			snap:     Totals{Delivered: 2, Gaps: 1, Missing: Window - 1},
			fin:      Totals{Delivered: 2, Gaps: 1, Lost: Window - 1},
		},
		{
			name: "restart at 1 below the window",
			// 5 is never received; the publisher restarts after 2000 and sends 1..3.
			in:   cat(seqs(1, 4), seqs(6, 2000), seqs(1, 3)),
			snap: Totals{Delivered: 1999 + 3, Gaps: 1, Lost: 1, Restarts: 1},
			fin:  Totals{Delivered: 1999 + 3, Gaps: 1, Lost: 1, Restarts: 1},
		},
		{
			name: "restart settles what the old run still missed",
			in:   cat(seqs(1, 1998), seqs(2000, 2000), []uint64{1}),
			snap: Totals{Delivered: 1999 + 1, Gaps: 1, Lost: 1, Restarts: 1},
			fin:  Totals{Delivered: 1999 + 1, Gaps: 1, Lost: 1, Restarts: 1},
		},
		{
			name:     "restart within the window looks like duplicates",
			in:       []uint64{1, 2, 3, 1, 2, 3, 4},
			outcomes: []Outcome{InOrder, InOrder, InOrder, Duplicate, Duplicate, Duplicate, InOrder},
			snap:     Totals{Delivered: 4, Duplicates: 3},
			fin:      Totals{Delivered: 4, Duplicates: 3},
		},
		{
			name:     "seq 0 is invalid",
			in:       []uint64{0, 1},
			outcomes: []Outcome{Invalid, InOrder},
			snap:     Totals{Delivered: 1, Invalid: 1},
			fin:      Totals{Delivered: 1, Invalid: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			k := Key(1, 2)
			for i, q := range tc.in {
				o := tr.Observe(k, q)
				if tc.outcomes != nil && o != tc.outcomes[i] {
					t.Errorf("message %d (seq %d): %v, want %v", i, q, o, tc.outcomes[i])
				}
			}
			tc.snap.Streams, tc.fin.Streams = 1, 1
			if got := tr.Snapshot(); got != tc.snap {
				t.Errorf("Snapshot:\n got %+v\nwant %+v", got, tc.snap)
			}
			if got := tr.Finish(); got != tc.fin {
				t.Errorf("Finish:\n got %+v\nwant %+v", got, tc.fin)
			}
			if got := tr.Finish(); got != tc.fin {
				t.Errorf("second Finish differs: %+v", got)
			}
			checkInvariants(t, tr.shard(k).streams[k])
		})
	}
}

func checkInvariants(t *testing.T, s *stream) {
	t.Helper()
	inWindow := min(s.max, Window)
	n := 0
	for _, w := range s.bits {
		n += bits.OnesCount64(w)
	}
	if uint64(n)+uint64(s.missing) != inWindow {
		t.Errorf("bitmap has %d set and %d missing; the window holds %d seqs", n, s.missing, inWindow)
	}
	if s.max > 0 && !s.has(s.max) {
		t.Errorf("max %d is not marked received", s.max)
	}
}

// TestTrackerAgainstModel compares the Tracker with exact bookkeeping (a set of every seq)
// on random streams whose messages are displaced by less than the window, where the two
// must agree exactly.
func TestTrackerAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := 1 + r.IntN(5000)
		maxShift := 1 + r.IntN(Window/2)
		var order []uint64
		for q := uint64(1); q <= uint64(n); q++ {
			if r.IntN(20) == 0 {
				continue // lost
			}
			order = append(order, q)
			if r.IntN(30) == 0 {
				order = append(order, q) // duplicated
			}
		}
		// Local shuffle: sort by position plus a jitter below maxShift, so no message
		// moves more than maxShift places.
		keys := make([]int, len(order))
		for i := range keys {
			keys[i] = i + r.IntN(maxShift)
		}
		idx := make([]int, len(order))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
		shuffled := make([]uint64, len(order))
		for i, j := range idx {
			shuffled[i] = order[j]
		}
		order = shuffled

		tr := NewTracker()
		seen := map[uint64]bool{}
		var want Totals
		var top uint64
		for _, q := range order {
			tr.Observe(StreamKey(round), q)
			switch {
			case seen[q]:
				want.Duplicates++
			case q < top:
				want.OutOfOrder++
				want.Delivered++
			default:
				if q > top+1 {
					want.Gaps++
				}
				want.Delivered++
			}
			seen[q] = true
			top = max(top, q)
		}
		want.Streams = 1
		want.Lost = top - want.Delivered
		if got := tr.Finish(); got != want {
			t.Fatalf("round %d (%d msgs, shift %d):\n got %+v\nwant %+v", round, len(order), maxShift, got, want)
		}
		k := StreamKey(round)
		checkInvariants(t, tr.shard(k).streams[k])
	}
}

func TestTrackerConcurrent(t *testing.T) {
	tr := NewTracker()
	const streams, per = 64, 2000
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			// Each goroutine owns 8 streams and interleaves them; seq 7 of every stream
			// is skipped, and every 100th message is sent twice.
			for q := uint64(1); q <= per; q++ {
				for s := g * 8; s < g*8+8; s++ {
					if q == 7 {
						continue
					}
					tr.Observe(Key(uint32(s), 99), q)
					if q%100 == 0 {
						tr.Observe(Key(uint32(s), 99), q)
					}
				}
			}
		})
	}
	snaps := make(chan Totals)
	go func() { snaps <- tr.Snapshot() }() // a reader racing the writers
	wg.Wait()
	<-snaps
	want := Totals{Streams: streams, Delivered: streams * (per - 1), Gaps: streams, Duplicates: streams * per / 100, Lost: streams}
	if got := tr.Finish(); got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestOutcomeString(t *testing.T) {
	if InOrder.String() != "in_order" || Invalid.String() != "invalid" || Outcome(200).String() != "unknown" {
		t.Error("unexpected Outcome names")
	}
}

func TestLossRatio(t *testing.T) {
	if r := (Totals{}).LossRatio(); r != 0 {
		t.Errorf("empty LossRatio = %v", r)
	}
	if r := (Totals{Delivered: 999, Lost: 1}).LossRatio(); r != 0.001 {
		t.Errorf("LossRatio = %v, want 0.001", r)
	}
}

// BenchmarkTrackerObserve feeds in-order messages round-robin over 1000 streams, the
// steady state of a healthy run: no allocations.
func BenchmarkTrackerObserve(b *testing.B) {
	const streams = 1000
	tr := NewTracker()
	for s := range streams {
		tr.Observe(StreamKey(s), 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seq uint64 = 2
	s := 0
	for b.Loop() {
		tr.Observe(StreamKey(s), seq)
		if s++; s == streams {
			s = 0
			seq++
		}
	}
}

// BenchmarkTrackerObserveReordered is the same with one message in 8 swapped with its
// successor, so about a quarter of messages are after-gap or out-of-order.
func BenchmarkTrackerObserveReordered(b *testing.B) {
	const streams = 1000
	tr := NewTracker()
	b.ReportAllocs()
	var seq uint64 = 1
	s := 0
	for b.Loop() {
		q := seq
		switch seq % 8 {
		case 3:
			q = seq + 1
		case 4:
			q = seq - 1
		}
		tr.Observe(StreamKey(s), q)
		if s++; s == streams {
			s = 0
			seq++
		}
	}
}

// BenchmarkTrackerObserveParallel has every goroutine feed its own streams, as receivers
// of different subscriptions would.
func BenchmarkTrackerObserveParallel(b *testing.B) {
	tr := NewTracker()
	var next uint32
	var mu sync.Mutex
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		base := next
		next += 100
		mu.Unlock()
		var seq uint64 = 1
		i := uint32(0)
		for pb.Next() {
			tr.Observe(Key(base+i, 1), seq)
			if i++; i == 100 {
				i = 0
				seq++
			}
		}
	})
}

func TestJoinTrackerStartsAtFirstSeq(t *testing.T) {
	tr := NewJoinTracker()
	k := Key(1, 2)
	// Joined at 500: 1..499 are not expected; 503 opens a gap of two, 502 fills one.
	for _, seq := range []uint64{500, 501, 503, 502} {
		tr.Observe(k, seq)
	}
	if o := tr.Observe(k, 10); o != Duplicate {
		t.Errorf("seq 10 after joining at 500: %v, want duplicate", o)
	}
	// Far past the window, the joined stream behaves like any other.
	for seq := uint64(504); seq <= 3050; seq++ {
		if seq%100 == 0 {
			continue // 25 lost
		}
		tr.Observe(k, seq)
	}
	got := tr.Finish()
	if got.Lost != 25 || got.Delivered != 4+2547-25 || got.OutOfOrder != 1 || got.Duplicates != 1 {
		t.Errorf("totals %+v, want lost 25, delivered %d, one out of order, one duplicate", got, 4+2547-25)
	}
	// The plain tracker counts the seqs before the first as missing.
	plain := NewTracker()
	plain.Observe(k, 500)
	if got := plain.Finish().Lost; got != 499 {
		t.Errorf("plain tracker whose first seq is 500: lost %d, want 499", got)
	}
}

func TestFinishWithCountsTheTail(t *testing.T) {
	tr := NewJoinTracker()
	for seq := uint64(1); seq <= 10; seq++ {
		tr.Observe(Key(1, 7), seq)
		tr.Observe(Key(2, 7), seq)
		tr.Observe(Key(1, 8), seq)
	}
	last := func(pub uint32) uint64 {
		switch pub {
		case 7:
			return 13 // 11, 12, 13 never arrived at either receiver
		case 8:
			return 10
		}
		return 0
	}
	got := tr.FinishWith(last)
	if got.Lost != 6 || got.Delivered != 30 {
		t.Errorf("totals %+v, want 6 lost (3 per receiver of publisher 7), 30 delivered", got)
	}
	if again := tr.FinishWith(last); again != got {
		t.Errorf("FinishWith changed state: %+v then %+v", got, again)
	}
}
