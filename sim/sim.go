// Package sim holds the small contracts between fleetsim's engine and the device models:
// what a device is (Device), what it may do (IO), how a kind of device is built from a
// scenario (Kind, DeviceConfig) and the simulated clock that compresses a day.
//
// The engine itself lives in sub-packages: scenario (loading and validation), topic (MQTT
// filter matching), broker (the embedded broker), mqttconn (shared connections and their
// dispatchers), metrics and runner. This package imports none of them, so device models
// depend only on these contracts and never on MQTT clients, sockets or Prometheus.
package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Device is one simulated device. Run blocks until ctx is cancelled (return nil) or the
// device fails. The engine runs each device in its own goroutine and owns that goroutine.
type Device interface {
	Run(ctx context.Context, io IO) error
}

// Discarder is implemented by a device that takes every message its subscriptions bring
// and does nothing with it, such as a backend sink that exists to be measured. The engine
// counts and measures what arrives for it as for any device but queues nothing: its Inbox
// stays empty, so no message is dropped for want of room and none costs the device's
// goroutine a wakeup.
type Discarder interface {
	Device
	DiscardsInbox()
}

// Pipeliner is implemented by a device that never looks at its publishes' outcomes, such
// as a load generator: the engine then may return from its PublishAt once the publish is
// on its way rather than complete, so that several of its QoS 1 and 2 publishes are in
// flight at once and a slow acknowledgement does not cap its rate at one a round trip.
// The engine still counts each publish's outcome when it comes; PublishAt's error is then
// only the hand-over's.
type Pipeliner interface {
	Device
	PipelinesPublishes()
}

// Scheduled is implemented by a device that sends on a schedule of its own (the open model,
// DESIGN.md §4), such as a load generator. DueBefore says how many sends its schedule called
// for before t, so that the engine counts the sends that were due and never made (a
// generator that fell behind) instead of letting them vanish. The engine calls it from
// other goroutines while the device runs, and once more after Run returns.
type Scheduled interface {
	Device
	DueBefore(t time.Time) uint64
}

// IO is everything a device may do. The engine implements it over MQTT; tests implement it
// with a small fake. Methods are safe to call from the device's own goroutine.
type IO interface {
	// Publish sends payload to topic and returns once the publish is complete for its QoS
	// (written for QoS 0, acknowledged for QoS 1 and 2) or failed. It respects the
	// device's publish rate limit, so it may wait.
	//
	// The engine measures what it can: a JSON object gets the measurement fields (publisher
	// id, sequence number, send time) added, a payload from Reserve gets them in its
	// reserved header, and anything else (plain text) goes out as it is, unmeasured.
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
	// PublishAt is Publish for a send that was due at due, on the device's schedule (the
	// open model, DESIGN.md §4): latency is measured from due, not from when the send got
	// out, so a stalled client or broker shows in the numbers, and a send that leaves late
	// is counted as late.
	PublishAt(ctx context.Context, due time.Time, topic string, payload []byte, qos byte, retained bool) error
	// SleepUntil waits until t, or until ctx ends and then returns ctx.Err(). The engine
	// wakes its sleeping devices from one timer of its own: a waiting device costs no
	// runtime timer (about 260 bytes each, a million of them add up), and its wake-up is not
	// held back by the garbage collector, which delays runtime timers during a mark phase.
	// A device that waits for its next send uses it rather than a time.Timer.
	SleepUntil(ctx context.Context, t time.Time) error
	// Subscribe adds a topic filter; matching messages arrive on Inbox. It returns the QoS
	// the broker granted.
	Subscribe(ctx context.Context, filter string, qos byte) (granted byte, err error)
	// Inbox delivers messages for the device's subscriptions, in arrival order. A device
	// that never subscribes may get a nil channel (never ready): ask for Inbox after
	// subscribing, or each time round the loop, rather than keeping it from before. When the
	// device does not keep up, messages are dropped and counted rather than blocking.
	Inbox() <-chan Message
	// SetState records the device's new state (a short word from a fixed set per kind,
	// such as "on", "off", "armed"), for metrics and the end-of-run summary.
	SetState(state string)
	// Say prints one line of narration on the console, exactly as given.
	Say(line string)
	// Reject counts a received payload the device could not use, with the reason.
	Reject(topic string, reason error)
	// Rand is the device's own random source, seeded from the run's seed.
	Rand() *rand.Rand
}

// TimerSleep is IO.SleepUntil on a timer of its own, for an IO that has no shared alarm (a
// test's fake) or a context the engine does not know.
func TimerSleep(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// HeaderRoom is how many bytes at the start of a payload from Reserve the engine keeps for
// its binary measurement header. sim/measure's HeaderSize is defined from it, and fails to
// compile if the header's layout does not fill it exactly.
const HeaderRoom = 23

// HeaderMark is the first byte of a reserved header: the binary header's magic and version,
// which tells the engine to fill the header in. sim/measure fails to compile if its header
// starts with another byte.
const HeaderMark = 0xF1

// Reserve returns a payload of size bytes (at least HeaderRoom) whose first HeaderRoom bytes
// are reserved for the engine's measurement header; the device may fill the rest. It is how
// load generators send compact, measured payloads of an exact size.
func Reserve(size int) []byte {
	p := make([]byte, max(size, HeaderRoom))
	p[0] = HeaderMark
	return p
}

// Reserved reports whether payload came from Reserve (its header room is still unfilled or
// holds a header).
func Reserved(payload []byte) bool { return len(payload) >= HeaderRoom && payload[0] == HeaderMark }

// Message is one MQTT message delivered to a device.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// DeviceConfig is what the engine tells a device about itself when building it.
type DeviceConfig struct {
	ID       string        // unique within the home, e.g. "bulb-1"
	Kind     string        // the kind's name, e.g. "bulb"
	Home     int           // home number, from 1
	Prefix   string        // the home's topic prefix, e.g. "home/1"
	Topic    string        // the device's own base topic, e.g. "home/1/bulb/bulb-1"
	Period   time.Duration // wall-clock period of periodic telemetry; 0 means none
	QoS      byte          // QoS of the device's publishes
	Retained bool          // whether the device's state publishes are retained
	MaxRate  float64       // the device's publish rate limit, messages per second
	Clock    Clock         // maps wall time to simulated time of day
	Shared   *Shared       // state shared by the devices of one home (e.g. its physics)
}

// Clock maps wall-clock time to simulated time: a day of Day wall time is 24 simulated
// hours, starting at simulated time-of-day Start when the wall clock reads WallStart.
// A zero Day means no compression: simulated time runs at wall speed.
type Clock struct {
	WallStart time.Time
	Start     time.Duration // simulated time of day at WallStart, in [0, 24h)
	Day       time.Duration // wall duration of one simulated day; 0 = real time
}

// Scale is how many simulated seconds pass per wall second.
func (c Clock) Scale() float64 {
	if c.Day <= 0 {
		return 1
	}
	return float64(24*time.Hour) / float64(c.Day)
}

// Elapsed is the simulated time elapsed since WallStart at wall time now.
func (c Clock) Elapsed(now time.Time) time.Duration {
	return time.Duration(float64(now.Sub(c.WallStart)) * c.Scale())
}

// TimeOfDay is the simulated time of day at wall time now, in [0, 24h); before WallStart
// (devices started ahead of it) it is the day before's.
func (c Clock) TimeOfDay(now time.Time) time.Duration {
	const day = 24 * time.Hour
	return ((c.Start+c.Elapsed(now))%day + day) % day
}

// WallFor converts a simulated duration into the wall duration it takes.
func (c Clock) WallFor(simulated time.Duration) time.Duration {
	return time.Duration(float64(simulated) / c.Scale())
}

// FormatTimeOfDay renders a time of day as "15:04".
func FormatTimeOfDay(d time.Duration) string {
	d = d % (24 * time.Hour)
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// ParseTimeOfDay parses "HH:MM" (00:00 to 23:59; the hour may have one digit) into the
// duration since midnight.
func ParseTimeOfDay(s string) (time.Duration, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, errH := strconv.Atoi(hh)
	m, errM := strconv.Atoi(mm)
	switch {
	case !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || errH != nil || errM != nil || hh[0] == '+' || hh[0] == '-' || mm[0] == '+' || mm[0] == '-':
		return 0, fmt.Errorf("expected a time of day \"HH:MM\", got %q", s)
	case h > 23 || m > 59:
		return 0, fmt.Errorf("%s is out of range (00:00..23:59)", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// Shared is a small per-home store for state the devices of one home share without MQTT,
// such as the home's physics model. The first device to ask for a key creates its value.
type Shared struct {
	mu     sync.Mutex
	values map[string]any
}

// NewShared returns an empty store.
func NewShared() *Shared { return &Shared{values: map[string]any{}} }

// Get returns the value under key, creating it with make on first use.
func (s *Shared) Get(key string, make func() any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[key]; ok {
		return v
	}
	v := make()
	s.values[key] = v
	return v
}

// Kind builds devices of one kind. Construct it with NewKind.
type Kind struct {
	// Doc is a one-line description shown by `fleetsim kinds` and in errors.
	Doc       string
	newParams func() any
	build     func(cfg DeviceConfig, params any) (Device, error)
}

// NewKind returns a Kind whose scenario params decode into P. defaults returns P with its
// defaults filled in; the scenario's params block overrides fields of it (unknown fields are
// errors). build checks the params and returns the device; a *ParamError names the bad field.
func NewKind[P any](doc string, defaults func() P, build func(cfg DeviceConfig, p P) (Device, error)) Kind {
	return Kind{
		Doc:       doc,
		newParams: func() any { p := defaults(); return &p },
		build: func(cfg DeviceConfig, params any) (Device, error) {
			return build(cfg, *params.(*P))
		},
	}
}

// NewParams returns a pointer to a fresh params value with defaults, ready to decode into.
func (k Kind) NewParams() any { return k.newParams() }

// Build builds a device from params previously obtained from NewParams and decoded.
func (k Kind) Build(cfg DeviceConfig, params any) (Device, error) { return k.build(cfg, params) }

// ParamError reports a bad value in a kind's params block. Field is the params key (as in
// the YAML, e.g. "leave" or "setpoints"), so the loader can point at its line.
type ParamError struct {
	Field string
	Err   error
}

func (e *ParamError) Error() string { return fmt.Sprintf("params.%s: %v", e.Field, e.Err) }
func (e *ParamError) Unwrap() error { return e.Err }
