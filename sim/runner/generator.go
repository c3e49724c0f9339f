package runner

import (
	"math"
	"runtime"
	rtmetrics "runtime/metrics"
	"syscall"
	"time"
)

// Generator is fleetsim watching itself, to tell when the generator rather than the broker
// was the limit.
type Generator struct {
	CPU            time.Duration // user + system CPU time of the process during the run
	Cores          int           // the cores fleetsim may use: GOMAXPROCS, at most the machine's CPUs
	Utilisation    float64       // CPU / (elapsed × cores), 0..1
	GCCycles       uint32
	GCPause        time.Duration
	MaxInFlight    int64 // most publishes in flight at once (sampled every 100 ms)
	InboxDropped   int64 // messages fleetsim's own devices could not take in time
	BrokerDropped  int64 // messages the embedded broker (inside fleetsim) dropped for slow subscribers
	Bottleneck     bool
	BottleneckWhy  []string
	MaxRSS         int64 // the process's peak resident set size, bytes; 0 where unknown
	Devices        int   // the fleet's size, for the memory a device costs
	GOMAXPROCS     int
	GOGC           int           // the collector's target percentage; -1 when off
	MemoryLimit    int64         // the runtime's soft memory limit, bytes; 0 when none
	StartingStack  int64         // the stack goroutines started with when the devices did, bytes
	WakeBatch      time.Duration // Config.WakeBatch: devices due within one such slot were woken together; 0: each at its time
	startCPU       time.Duration
	startGC        uint32
	startGCPauseNs uint64
}

// minStack is the smallest stack a goroutine starts with (the runtime's fixedStack on
// Linux, Darwin and Windows).
const minStack = 2048

func startGenerator() Generator {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Generator{Cores: min(runtime.GOMAXPROCS(0), runtime.NumCPU()), startCPU: cpuTime(), startGC: ms.NumGC, startGCPauseNs: ms.PauseTotalNs}
}

// maxRSS is the process's peak resident set size in bytes, 0 if unknown.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss // bytes there, kilobytes on Linux (getrusage(2))
	}
	return ru.Maxrss << 10
}

// startingStack is the stack a new goroutine gets now. The runtime sizes it from the
// average it saw at the last collection (GODEBUG adaptivestackstart, on by default), and
// a device's goroutine that starts at 4 KiB keeps it: it uses too much to be shrunk back.
func startingStack() int64 {
	s := []rtmetrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// gcSettings reads the collector's settings in effect: GOGC (-1 when off) and the soft
// memory limit (0 when none).
func gcSettings() (gogc int, limit int64) {
	samples := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	rtmetrics.Read(samples)
	gogc = -1
	if samples[0].Value.Kind() == rtmetrics.KindUint64 {
		if v := samples[0].Value.Uint64(); v > 0 {
			gogc = int(v)
		}
	}
	if samples[1].Value.Kind() == rtmetrics.KindUint64 {
		if v := samples[1].Value.Uint64(); v < math.MaxInt64 {
			limit = int64(v)
		}
	}
	return gogc, limit
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// probe fills in what the generator used over a run of elapsed: CPU, collections, memory
// and the runtime's settings.
func (g *Generator) probe(elapsed time.Duration) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g.CPU = cpuTime() - g.startCPU
	g.GCCycles = ms.NumGC - g.startGC
	g.GCPause = time.Duration(ms.PauseTotalNs - g.startGCPauseNs)
	g.MaxRSS = maxRSS()
	g.GOMAXPROCS = runtime.GOMAXPROCS(0)
	g.GOGC, g.MemoryLimit = gcSettings()
	if elapsed > 0 && g.Cores > 0 {
		g.Utilisation = g.CPU.Seconds() / (elapsed.Seconds() * float64(g.Cores))
	}
}
