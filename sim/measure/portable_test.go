package measure

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestMergedPortablePercentilesEqualOneHistogram is a property test: values spread at
// random over a few Recorders (as over the shards of a run), carried in their portable
// form and merged, give exactly the percentiles, min, max, mean and count of one Recorder
// fed them all, whatever the values and however they are split.
func TestMergedPortablePercentilesEqualOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 60 {
		parts := make([]*Recorder, 1+rng.IntN(5))
		for i := range parts {
			parts[i] = NewRecorder()
		}
		whole := NewRecorder()
		for range rng.IntN(2000) {
			var d time.Duration
			switch rng.IntN(4) {
			case 0:
				d = time.Duration(rng.Int64N(int64(time.Millisecond)))
			case 1:
				d = time.Duration(rng.Int64N(int64(time.Second)))
			case 2:
				d = time.Duration(rng.Int64N(int64(2 * time.Hour))) // some beyond LatencyMax
			default:
				d = -time.Duration(rng.Int64N(int64(time.Millisecond))) // a clock behind
			}
			whole.Record(d)
			parts[rng.IntN(len(parts))].Record(d)
		}
		ps := make([]Portable, len(parts))
		for i, p := range parts {
			ps[i] = p.Portable()
		}
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		merged, err := MergePortable(ps...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := merged.Percentiles()
		if err != nil {
			t.Fatal(err)
		}
		if want := whole.Snapshot(); got != want {
			t.Fatalf("trial %d (%d parts): merged %+v, one histogram %+v", trial, len(parts), got, want)
		}
		if merged != whole.Portable() {
			t.Fatalf("trial %d: the merged portable form differs from one recorder's", trial)
		}
	}
}

func TestMergePortableRejectsBadHistograms(t *testing.T) {
	r := NewRecorder()
	r.Record(time.Millisecond)
	good := r.Portable()
	for name, p := range map[string]Portable{
		"not base64":      {Count: 1, HDR: "!!!"},
		"not a histogram": {Count: 1, HDR: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8="},
		"wrong count":     {Count: 2, SumNS: good.SumNS, MinNS: good.MinNS, MaxNS: good.MaxNS, HDR: good.HDR},
	} {
		if _, err := MergePortable(good, p); err == nil || !strings.Contains(err.Error(), "histogram") {
			t.Errorf("%s: error %v, want one about the histogram", name, err)
		}
	}
	if m, err := MergePortable(); err != nil || m.Count != 0 {
		t.Errorf("merging nothing: %+v, %v; want an empty histogram", m, err)
	}
}

// TestTalliesAddUpToFinishWith: a receiver's streams' tallies sum to what FinishWith
// counts, tail included, and say where each stream began and how far it got.
func TestTalliesAddUpToFinishWith(t *testing.T) {
	tr := NewJoinTracker()
	for _, seq := range []uint64{3, 4, 6, 5, 5, 9} { // joins at 3; 7, 8 missing; 5 late and twice
		tr.Observe(Key(1, 7), seq)
	}
	tr.Observe(Key(1, 8), 1)
	last := func(p uint32) uint64 { return map[uint32]uint64{7: 12, 8: 0}[p] }
	tot := tr.FinishWith(last)
	var sum Totals
	for _, s := range tr.Tallies(last) {
		sum.Delivered += s.Delivered
		sum.Lost += s.Lost
		sum.Duplicates += s.Duplicates
		sum.OutOfOrder += s.OutOfOrder
		if s.Key == Key(1, 7) && (s.First != 3 || s.Max != 9 || s.Lost != 2+3) {
			t.Errorf("stream 7: %+v; want first 3, max 9, lost 7, 8 and the tail 10..12", s)
		}
	}
	if sum.Delivered != tot.Delivered || sum.Lost != tot.Lost || sum.Duplicates != tot.Duplicates || sum.OutOfOrder != tot.OutOfOrder {
		t.Errorf("tallies sum to %+v, FinishWith says %+v", sum, tot)
	}
}
