// Package link shapes a network connection's bytes the way a slow, unstable wireless link
// would: bandwidth each way (a token bucket on the bytes that cross the socket, so MQTT
// headers, acks and TLS records all count), one-way latency and jitter each way, and outages
// that cut every connection of the link and refuse new ones for a while.
//
// A Link is one shaped radio link, such as a home hub's Wi-Fi or one NB-IoT modem. All
// connections opened or wrapped through it share its bandwidth budget and its outages. The
// engine plugs it into paho through ClientOptions.SetCustomOpenConnectionFn (dial with
// Link.Dial, then wrap in TLS or WebSocket on top, so their bytes are shaped too).
//
// This package imports nothing of fleetsim's; it counts what it does in Stats and leaves
// metrics to the caller.
package link

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Profile describes a link. The zero Profile is an unshaped link.
//
// In YAML the fields are snake_case and the durations are strings parsed by
// time.ParseDuration ("600ms", "1.5s"); go.yaml.in/yaml/v3 and the scenario loader both
// decode time.Duration that way.
type Profile struct {
	Name string `yaml:"name"`
	// Bandwidth in bytes per second, up (device to broker) and down; 0 means unlimited.
	UpBytesPerSec   float64 `yaml:"up_bytes_per_sec"`
	DownBytesPerSec float64 `yaml:"down_bytes_per_sec"`
	// One-way delay in each direction: every chunk of bytes is delayed by Latency plus a
	// jitter drawn uniformly from [0, Jitter]. Latency is thus the minimum delay and
	// Latency+Jitter/2 the mean. Bytes are never reordered: a chunk that draws a shorter
	// delay than the one before it waits for it, as on a TCP stream.
	Latency time.Duration `yaml:"latency"`
	Jitter  time.Duration `yaml:"jitter"`
	// Outages: the link goes down after exponentially distributed intervals with mean
	// OutageEvery (counted from the end of the previous outage) and stays down for
	// OutageFor. Both zero means no outages. Only a Link made by NewLink schedules them.
	OutageEvery time.Duration `yaml:"outage_every"`
	OutageFor   time.Duration `yaml:"outage_for"`
	// OutageFixed makes the schedule fixed instead: down exactly OutageEvery after the link
	// was made (and after the end of each outage), for OutageFor.
	OutageFixed bool `yaml:"outage_fixed"`
}

// Limits checked by Validate.
const (
	MinBytesPerSec = 1   // slowest non-zero bandwidth, bytes/s
	MaxBytesPerSec = 1e9 // fastest bandwidth, bytes/s (8 Gbit/s; beyond it, leave it 0)
	MaxLatency     = time.Minute
	MaxJitter      = time.Minute
	MinOutageEvery = time.Second // mean interval between outages, when set
	MaxOutageFor   = 24 * time.Hour
)

// Validate reports every problem with p at once, each naming the YAML field.
func (p Profile) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, r := range []struct {
		field string
		v     float64
	}{{"up_bytes_per_sec", p.UpBytesPerSec}, {"down_bytes_per_sec", p.DownBytesPerSec}} {
		if math.IsNaN(r.v) || r.v != 0 && (r.v < MinBytesPerSec || r.v > MaxBytesPerSec) {
			bad(r.field, "%v is out of range: 0 (unlimited) or %v..%v bytes/s", r.v, float64(MinBytesPerSec), float64(MaxBytesPerSec))
		}
	}
	if p.Latency < 0 || p.Latency > MaxLatency {
		bad("latency", "%v is out of range 0..%v", p.Latency, MaxLatency)
	}
	if p.Jitter < 0 || p.Jitter > MaxJitter {
		bad("jitter", "%v is out of range 0..%v", p.Jitter, MaxJitter)
	}
	switch {
	case p.OutageEvery == 0 && p.OutageFor == 0:
	case p.OutageEvery == 0 || p.OutageFor == 0:
		bad("outage_every", "outage_every and outage_for go together: set both or neither")
	default:
		if p.OutageEvery < MinOutageEvery {
			bad("outage_every", "%v is below the minimum %v", p.OutageEvery, MinOutageEvery)
		}
		if p.OutageFor < 0 || p.OutageFor > MaxOutageFor {
			bad("outage_for", "%v is out of range 0..%v", p.OutageFor, MaxOutageFor)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	name := p.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Errorf("link profile %s: %w", name, errors.Join(errs...))
}

// kB is 1000 bytes: link rates are quoted in decimal units (kbit/s, Mbit/s).
const kB = 1000

// Profiles returns the named profiles, a fresh map on each call. Figures are typical rather
// than best case: peak radio rates minus protocol overhead and scheduling, because the
// shaper counts the TCP payload only. Outage figures are illustrative, not from a standard;
// scenarios override them for what they test.
func Profiles() map[string]Profile {
	ps := []Profile{
		{
			// Wired Ethernet, 100BASE-TX (IEEE 802.3u: 100 Mbit/s = 12.5 MB/s), the usual
			// PHY of a home hub or a Raspberry Pi 3. One switch hop costs well under 1 ms;
			// Go timers round it up to about 1 ms anyway.
			Name: "lan", UpBytesPerSec: 12.5e6, DownBytesPerSec: 12.5e6,
			Latency: 200 * time.Microsecond, Jitter: 100 * time.Microsecond,
		},
		{
			// IEEE 802.11n, 2.4 GHz, one spatial stream, 20 MHz: PHY rate 65 Mbit/s (MCS7,
			// 72.2 with short guard interval). MAC overhead and contention leave about a
			// third for TCP in a busy home: 20 Mbit/s = 2.5 MB/s. A few ms one way, with
			// tens of ms of jitter from contention and retries (power-save beacon waits of
			// a sleeping station, ~100 ms, are not modelled).
			Name: "wifi", UpBytesPerSec: 2.5e6, DownBytesPerSec: 2.5e6,
			Latency: 2 * time.Millisecond, Jitter: 8 * time.Millisecond,
			OutageEvery: 2 * time.Hour, OutageFor: 3 * time.Second,
		},
		{
			// Bluetooth LE through a gateway (IPSP or a GATT proxy). Bluetooth Core Spec:
			// LE 1M PHY at 1 Msym/s, connection interval 7.5 ms..4 s. Application
			// throughput is 100..300 kbit/s in practice (DLE and 2M PHY raise the ceiling
			// to ~1.4 Mbit/s in a lab); 128 kbit/s = 16 kB/s with a 30 ms connection
			// interval, so data waits 0..30 ms for the next connection event.
			Name: "ble", UpBytesPerSec: 16 * kB, DownBytesPerSec: 16 * kB,
			Latency: 8 * time.Millisecond, Jitter: 30 * time.Millisecond,
			OutageEvery: 10 * time.Minute, OutageFor: 5 * time.Second,
		},
		{
			// LTE-M (3GPP Rel-13 Cat-M1, 1.4 MHz): 1 Mbit/s peak; a half-duplex FDD modem,
			// the common cheap one, reaches ~375 kbit/s up and ~300 kbit/s down after
			// scheduling. GSMA quotes 10..15 ms radio latency; with the core network and
			// the internet to a broker, ~50 ms one way plus jitter is typical.
			Name: "lte-m", UpBytesPerSec: 375 * kB / 8, DownBytesPerSec: 300 * kB / 8,
			Latency: 50 * time.Millisecond, Jitter: 50 * time.Millisecond,
			OutageEvery: 30 * time.Minute, OutageFor: 10 * time.Second,
		},
		{
			// NB-IoT (3GPP Rel-13 Cat-NB1, 180 kHz): peak ~26 kbit/s down and ~62 kbit/s up
			// (multi-tone). GSMA gives 1.6..10 s latency; 800 ms one way (1.6 s round
			// trip) plus up to 1.2 s jitter keeps to the fast end of that.
			Name: "nb-iot", UpBytesPerSec: 62 * kB / 8, DownBytesPerSec: 26 * kB / 8,
			Latency: 800 * time.Millisecond, Jitter: 1200 * time.Millisecond,
			OutageEvery: 30 * time.Minute, OutageFor: 30 * time.Second,
		},
		{
			// Geostationary satellite broadband (consumer plans such as 25/3 Mbit/s). One
			// hop, terminal to satellite (35,786 km up) to gateway, is 2 × 35,786 km at
			// the speed of light (299,792 km/s) = 239 ms straight below the satellite and
			// 2 × 41,679 km = 278 ms at the edge of its coverage (0° elevation). The
			// gateway's backhaul to the internet and the return link's TDMA scheduling add
			// a few tens of ms: one way is 280..320 ms, 300 ms on average, so a round trip
			// averages the ~600 ms usually quoted for GEO. Latency here is one way and
			// applies to each direction; the "600 ms" figures are round trips (a scenario
			// that wants 600 ms each way writes latency: 600ms). Rain fade and beam
			// handover cause short outages.
			Name: "satellite", UpBytesPerSec: 3e6 / 8, DownBytesPerSec: 25e6 / 8,
			Latency: 280 * time.Millisecond, Jitter: 40 * time.Millisecond,
			OutageEvery: time.Hour, OutageFor: 20 * time.Second,
		},
	}
	m := make(map[string]Profile, len(ps))
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// Lookup returns the named profile with every non-zero field of override replacing its own
// (a zero field of override keeps the profile's value, so an override cannot switch a
// feature off: use a full Profile for that). The result is validated.
//
// The result keeps the profile's name if override changes nothing else, takes override's
// Name if it has one, and is otherwise named after the profile with a "*" ("wifi*"), so
// that metrics and summaries never show a changed profile under the stock name.
func Lookup(name string, override Profile) (Profile, error) {
	all := Profiles()
	base, ok := all[name]
	if !ok {
		return Profile{}, fmt.Errorf("unknown link profile %q (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(all)), ", "))
	}
	p := base
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	if override.UpBytesPerSec != 0 {
		p.UpBytesPerSec = override.UpBytesPerSec
	}
	if override.DownBytesPerSec != 0 {
		p.DownBytesPerSec = override.DownBytesPerSec
	}
	set(&p.Latency, override.Latency)
	set(&p.Jitter, override.Jitter)
	set(&p.OutageEvery, override.OutageEvery)
	set(&p.OutageFor, override.OutageFor)
	p.OutageFixed = p.OutageFixed || override.OutageFixed
	switch {
	case override.Name != "":
		p.Name = override.Name
	case p != base:
		p.Name += ModifiedSuffix
	}
	return p, p.Validate()
}

// ModifiedSuffix marks the name of a named profile with some fields overridden.
const ModifiedSuffix = "*"
