package main

import (
	"math"
	"strings"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/scenario"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// What fleetsim measured of itself, from which `fleetsim kubernetes` sizes a shard's
// resource requests. Each figure names the README table it comes from; when those tables
// are measured again, change these with them.
const (
	// podBaseBytes is what a run costs before its devices: README "Scale" measured 74 MB of
	// peak RSS at 10,000 devices, of which about 43 MB is the devices at 4.3 KB each; the
	// ~31 MB left (runtime, metrics, buffers) is rounded up.
	podBaseBytes = 32 << 20
	// bytesPerDevice is README "Scale"'s 4,312 B a device (peak RSS at 100,000 devices;
	// 3,989 B at a million), rounded up.
	bytesPerDevice = 4_400
	// bytesPerConnection is README "Performance"'s 45.9 KB resident per MQTT connection
	// (per-device connections to mosquitto), rounded up.
	bytesPerConnection = 46_000
	// memoryLimitFactor leaves room above the measured figures, which were taken at one
	// publish a minute: a busy run's garbage (about 1.7 KB a message, README "Scale") and
	// the collector's headroom. A pod killed for its memory loses its report.
	memoryLimitFactor = 2
	// goMemLimitShare of the memory limit is given to GOMEMLIMIT, so that Go collects
	// harder before the kernel kills the pod.
	goMemLimitShare = 0.9

	// podBaseMilliCPU is a run's own work at rest (metrics, progress, the collector).
	podBaseMilliCPU = 100
	// milliCPUPerDevice is README "Scale"'s 100,000 devices publishing once a minute:
	// 11.6 s of CPU in a minute, 0.19 cores, about 2 millicores per 1,000 devices.
	milliCPUPerDevice = 0.002
	// milliCPUPerMessage is README "Performance"'s 27.9 CPU-seconds per million delivered
	// QoS 1 messages at 30k msg/s (QoS 0 costs 16.4): 28 µs of CPU, 0.028 millicore-seconds,
	// for a message published and received in one process. The dearer QoS is used for
	// all, and half of it is counted for each side: a shard may publish what another
	// receives.
	milliCPUPerMessage = 0.028

	// ephemeralPortsPerAddress is what Linux's default ip_local_port_range (32768-60999)
	// gives one source address: a pod's connections to one broker address beyond it fail.
	ephemeralPortsPerAddress = 28_232
)

// shardSize is the most any of n shards of s runs: a shard is a slice of about
// ceil(homes/n) homes, and a group limited to its first homes (a backend with homes: 1)
// is counted where it may land. The scenario's connection mode applies inside each shard;
// a pool is counted whole in every shard.
type shardSize struct {
	homes, devices, connections int
	published, received         float64 // messages per second at the schedules' peak
}

func sizeShard(s *scenario.Scenario, n int) shardSize {
	z := shardSize{homes: (s.Homes + n - 1) / n}
	for i := range s.Groups {
		g := &s.Groups[i]
		homes := z.homes
		if g.Homes > 0 {
			homes = min(homes, g.Homes)
		}
		count := g.Count * homes
		z.devices += count
		z.published += float64(count) * peakRate(g)
		z.received += float64(count) * sinkRate(s, g)
	}
	switch s.Connections.Mode {
	case scenario.PerDevice:
		z.connections = z.devices
	case scenario.Pool:
		z.connections = min(s.Connections.PoolSize, z.devices)
	default:
		z.connections = z.homes
	}
	return z
}

// peakRate is the highest rate one device of g publishes on a schedule: a load device's
// rate or the top of its phases, else one message per the group's period. Devices that
// publish on events (a phone leaving home) are not counted: they are rare.
func peakRate(g *scenario.Group) float64 {
	if p, ok := g.Params.(*devices.LoadParams); ok {
		peak := p.Rate
		for _, ph := range p.Phases {
			peak = max(peak, ph.Rate, ph.From, ph.To)
		}
		if peak > 0 {
			return peak
		}
	}
	if g.Period > 0 {
		return 1 / g.Period.Seconds()
	}
	return 0
}

// sinkRate is the most one sink device of g receives a second, at the publishers' peak,
// from the whole fleet, whichever shards they run in: for each of its filters (as
// expanded in home 1), every publishing group's homes whose topic it matches. The
// members of a shared subscription, the group's devices in a home, split what it takes.
// Other kinds receive little, and are not counted.
func sinkRate(s *scenario.Scenario, g *scenario.Group) float64 {
	p, ok := g.Params.(*devices.SinkParams)
	if !ok {
		return 0
	}
	rate := 0.0
	for _, f := range p.Subscribe {
		f = strings.ReplaceAll(f, "{prefix}", s.Prefix(1))
		r := 0.0
		for i := range s.Groups {
			pub := &s.Groups[i]
			if peak := peakRate(pub); peak > 0 {
				r += peak * float64(pub.Count*matchingHomes(s, pub, f))
			}
		}
		if _, _, shared := topic.SharedFilter(f); shared {
			r /= float64(g.Count)
		}
		rate += r
	}
	return rate
}

// matchingHomes counts the homes whose device of pub publishes on a topic filter f matches
// (its first device's topic stands for the group's).
func matchingHomes(s *scenario.Scenario, pub *scenario.Group, f string) int {
	n := 0
	for h := 1; h <= s.Homes && pub.InHome(h); h++ {
		if topic.Match(f, s.DeviceConfig(pub, h, 1).Topic) {
			n++
		}
	}
	return n
}

// memoryRequest is the shard's expected peak resident memory, in bytes rounded up to MiB.
func (z shardSize) memoryRequest() int64 {
	b := podBaseBytes + float64(z.devices)*bytesPerDevice + float64(z.connections)*bytesPerConnection
	return roundUp(int64(b), 1<<20)
}

// milliCPURequest is the shard's expected CPU, in millicores rounded up to 50.
func (z shardSize) milliCPURequest() int64 {
	m := podBaseMilliCPU + float64(z.devices)*milliCPUPerDevice + (z.published+z.received)*milliCPUPerMessage/2
	return roundUp(int64(math.Ceil(m)), 50)
}

func roundUp(v, unit int64) int64 { return (v + unit - 1) / unit * unit }
