package link

import (
	"fmt"
	"testing"
	"time"
)

// runShaped writes n chunks of size bytes through a fresh conn of profile p over loopback
// and returns the bytes the peer received and how long from the link's creation to the last
// arrival. It stops the benchmark timer around setup.
func runShaped(b *testing.B, p Profile, size int) (int64, time.Duration) {
	b.StopTimer()
	a, peer := tcpPair(b)
	type result struct {
		n    int64
		last time.Time
	}
	got := make(chan result, 1)
	go func() {
		n, last := drain(peer)
		got <- result{n, last}
	}()
	buf := make([]byte, size)
	start := time.Now()
	c := Wrap(a, p, nil)
	b.StartTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	r := <-got
	b.StopTimer()
	return r.n, r.last.Sub(start)
}

// BenchmarkShapedThroughput reports the achieved rate through an up-shaped conn over
// loopback and its error against the target. Each op writes 10 ms worth of the rate (at
// least a byte). For the 10 s window: go test -run '^$' -bench ShapedThroughput
// -benchtime 10s ./sim/link/.
func BenchmarkShapedThroughput(b *testing.B) {
	for _, rate := range []float64{300, 64e3, 1e6, 10e6, 100e6} {
		b.Run(fmt.Sprintf("%gB/s", rate), func(b *testing.B) {
			size := max(int(rate/100), 1)
			b.SetBytes(int64(size))
			n, elapsed := runShaped(b, Profile{UpBytesPerSec: rate}, size)
			got := float64(n) / elapsed.Seconds()
			b.ReportMetric(got, "B/s")
			b.ReportMetric((got/rate-1)*100, "err%")
		})
	}
}

// BenchmarkBurstWindow shows why the burst holds 5 ms of the rate: with less, timer
// lateness loses tokens at high rates.
func BenchmarkBurstWindow(b *testing.B) {
	defer func(w time.Duration) { burstWindow = w }(burstWindow)
	for _, rate := range []float64{10e6, 100e6} {
		for _, w := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("%gB/s/%v", rate, w), func(b *testing.B) {
				burstWindow = w
				size := int(rate / 100)
				b.SetBytes(int64(size))
				n, elapsed := runShaped(b, Profile{UpBytesPerSec: rate}, size)
				got := float64(n) / elapsed.Seconds()
				b.ReportMetric(got, "B/s")
				b.ReportMetric((got/rate-1)*100, "err%")
			})
		}
	}
}

// BenchmarkWrapOverhead compares the CPU per MB written over loopback through a bare
// connection, an unlimited shaped one (pass-through), an unlimited one with a delay (queue
// and writer goroutine) and one limited to a rate above what loopback reaches here.
func BenchmarkWrapOverhead(b *testing.B) {
	const size = 64 << 10
	for _, tc := range []struct {
		name string
		p    *Profile
	}{
		{"bare", nil},
		{"unlimited", &Profile{}},
		{"delayed-1ms", &Profile{Latency: time.Millisecond}},
		{"limited-1GB/s", &Profile{UpBytesPerSec: 1e9}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, peer := tcpPair(b)
			done := make(chan struct{})
			go func() { drain(peer); close(done) }()
			c := a
			if tc.p != nil {
				c = Wrap(a, *tc.p, nil)
			}
			buf := make([]byte, size)
			b.SetBytes(size)
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			<-done
			b.StopTimer()
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu)/(float64(b.N)*size/1e6), "cpu-ns/MB")
			}
		})
	}
}
