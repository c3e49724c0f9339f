package measure

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exact returns the q-th percentile of sorted by nearest rank, as the histogram ranks.
func exact(sorted []time.Duration, q float64) time.Duration {
	rank := int(q/100*float64(len(sorted)) + 0.5)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// within reports whether got is within the histogram's precision of want: 0.1 % of the
// value, or 1 µs near the bottom of the range.
func within(got, want time.Duration) bool {
	tol := max(float64(want)*0.001, float64(time.Microsecond))
	return math.Abs(float64(got-want)) <= tol
}

func TestRecorderAgainstExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0..100ms", func() time.Duration { return time.Duration(r.Int64N(int64(100 * time.Millisecond))) }},
		{"log-normal around 2ms", func() time.Duration {
			return time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(2*time.Millisecond))
		}},
		{"bimodal with a 1s tail", func() time.Duration {
			if r.IntN(100) == 0 {
				return time.Second + time.Duration(r.Int64N(int64(time.Second)))
			}
			return 500*time.Microsecond + time.Duration(r.Int64N(int64(time.Millisecond)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := NewRecorder()
			data := make([]time.Duration, 100_000)
			var sum float64
			for i := range data {
				d := min(tc.gen(), LatencyMax)
				data[i] = d
				sum += float64(d)
				rec.Record(d)
			}
			slices.Sort(data)
			p := rec.Snapshot()
			if p.Count != int64(len(data)) || p.OutOfRange != 0 {
				t.Fatalf("Count = %d, OutOfRange = %d", p.Count, p.OutOfRange)
			}
			for _, c := range []struct {
				name string
				got  time.Duration
				q    float64
			}{{"p50", p.P50, 50}, {"p90", p.P90, 90}, {"p99", p.P99, 99}, {"p99.9", p.P999, 99.9}} {
				if want := exact(data, c.q); !within(c.got, want) {
					t.Errorf("%s = %v, exact %v", c.name, c.got, want)
				}
			}
			if p.Min != data[0] || p.Max != data[len(data)-1] {
				t.Errorf("Min, Max = %v, %v; exact %v, %v", p.Min, p.Max, data[0], data[len(data)-1])
			}
			if want := time.Duration(math.Round(sum / float64(len(data)))); p.Mean != want {
				t.Errorf("Mean = %v, exact %v", p.Mean, want)
			}
			if m := rec.Merged(); m.TotalCount() != int64(len(data)) {
				t.Errorf("Merged count = %d", m.TotalCount())
			}
		})
	}
}

func TestRecorderSmallKnown(t *testing.T) {
	rec := NewRecorder()
	for i := 1; i <= 1000; i++ {
		rec.Record(time.Duration(i) * time.Millisecond)
	}
	p := rec.Snapshot()
	for _, c := range []struct {
		got, want time.Duration
	}{{p.P50, 500 * time.Millisecond}, {p.P90, 900 * time.Millisecond}, {p.P99, 990 * time.Millisecond}, {p.P999, 999 * time.Millisecond}} {
		if !within(c.got, c.want) {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
	if p.Max != time.Second || p.Min != time.Millisecond || p.Mean != 500500*time.Microsecond {
		t.Errorf("Min %v Max %v Mean %v", p.Min, p.Max, p.Mean)
	}
}

func TestRecorderEdges(t *testing.T) {
	rec := NewRecorder()
	if p := rec.Snapshot(); p != (Percentiles{}) {
		t.Fatalf("empty Snapshot = %+v", p)
	}
	rec.Record(-time.Second)  // clocks disagree
	rec.Record(2 * time.Hour) // beyond the range
	rec.Record(0)
	p := rec.Snapshot()
	if p.Count != 3 || p.OutOfRange != 2 || p.Min != 0 || p.Max != LatencyMax {
		t.Fatalf("got %+v", p)
	}
	if !within(p.P999, LatencyMax) {
		t.Errorf("P999 = %v", p.P999)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	rec := NewRecorder()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			record := rec.Record
			if g%2 == 0 {
				record = rec.Local().Record
			}
			for i := range 5000 {
				record(time.Duration(g*5000+i+1) * time.Microsecond)
			}
		})
	}
	done := make(chan Percentiles)
	go func() { done <- rec.Snapshot() }() // a reader racing the writers
	wg.Wait()
	<-done
	p := rec.Snapshot()
	if p.Count != 40000 || p.Max != 40000*time.Microsecond || p.Min != time.Microsecond {
		t.Fatalf("got %+v", p)
	}
	if !within(p.P50, 20000*time.Microsecond) {
		t.Errorf("P50 = %v", p.P50)
	}
}

func TestRecorderRecordNoAlloc(t *testing.T) {
	rec := NewRecorder()
	if n := testing.AllocsPerRun(1000, func() { rec.Record(3 * time.Millisecond) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
	l := rec.Local()
	if n := testing.AllocsPerRun(1000, func() { l.Record(3 * time.Millisecond) }); n != 0 {
		t.Errorf("Local.Record allocates %v times", n)
	}
}

func benchmarkRecord(b *testing.B, local bool) {
	rec := NewRecorder()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		record := rec.Record
		if local {
			record = rec.Local().Record
		}
		d := time.Millisecond
		for pb.Next() {
			record(d)
			d += 7 * time.Microsecond
			if d > time.Second {
				d = time.Millisecond
			}
		}
	})
}

// BenchmarkRecorderRecord compares every goroutine recording through the shared lock with
// every goroutine recording into its own Local, both under RunParallel.
func BenchmarkRecorderRecord(b *testing.B) {
	b.Run("shared", func(b *testing.B) { benchmarkRecord(b, false) })
	b.Run("local", func(b *testing.B) { benchmarkRecord(b, true) })
}

func BenchmarkRecorderSnapshot(b *testing.B) {
	rec := NewRecorder()
	for i := range 100_000 {
		rec.Record(time.Duration(i) * time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec.Snapshot()
	}
}

func TestCombinedIsOneRecorderOfEverything(t *testing.T) {
	a, b, all := NewRecorder(), NewRecorder(), NewRecorder()
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Millisecond
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	if got, want := Combined(a, b), all.Snapshot(); got != want {
		t.Errorf("Combined(a, b) = %+v, want %+v", got, want)
	}
	if got := Combined(); got.Count != 0 {
		t.Errorf("Combined() of nothing = %+v, want zero", got)
	}
}
