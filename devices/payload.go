package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// out is what a device sends out: JSON publishes with the common envelope, state changes
// and narration lines. Each Run makes its own, so sequence numbers start at 1 per run.
type out struct {
	cfg sim.DeviceConfig
	io  sim.IO
	// due, when set, is when the next publish was scheduled (a period's tick): the engine
	// measures its latency from then (sim.IO.PublishAt). publish uses it once.
	due time.Time
}

func newOut(cfg sim.DeviceConfig, io sim.IO) *out {
	return &out{cfg: cfg, io: io}
}

// tod is the simulated time of day now.
func (o *out) tod() time.Duration { return o.cfg.Clock.TimeOfDay(time.Now()) }

// publish adds the envelope (id, time, sim_time) to fields and publishes them as JSON; the
// engine adds the measurement fields (pub, seq, sent_ns). A failed publish is the engine's
// to count; the device carries on.
func (o *out) publish(ctx context.Context, topic string, retained bool, fields map[string]any) {
	now := time.Now()
	fields["id"] = o.cfg.ID
	fields["time"] = now.UTC().Format(time.RFC3339Nano)
	fields["sim_time"] = sim.FormatTimeOfDay(o.cfg.Clock.TimeOfDay(now))
	payload, err := json.Marshal(fields)
	if err != nil { // only finite numbers, strings and bools are ever sent
		return
	}
	if due := o.due; !due.IsZero() {
		o.due = time.Time{}
		_ = o.io.PublishAt(ctx, due, topic, payload, o.cfg.QoS, retained)
		return
	}
	_ = o.io.Publish(ctx, topic, payload, o.cfg.QoS, retained)
}

// cause is why a state changed: the topic of the message that did it (or "start",
// "schedule", "timer") for the payload, and a human reason for the narration.
type cause struct{ topic, say string }

var atStart = cause{topic: "start", say: "start"}

// onTopic is the cause of a change brought by a message on topic.
func onTopic(topic, why string) cause {
	if why == "" {
		return cause{topic, "on " + topic}
	}
	return cause{topic, why + ", on " + topic}
}

// publishState publishes the device's state to {topic}/state with extra fields.
func (o *out) publishState(ctx context.Context, word string, c cause, extra map[string]any) {
	fields := map[string]any{"state": word, "cause": c.topic}
	for k, v := range extra {
		fields[k] = v
	}
	o.publish(ctx, o.cfg.Topic+"/state", o.cfg.Retained, fields)
}

// state records, publishes and narrates a new state.
func (o *out) state(ctx context.Context, word string, c cause, extra map[string]any) {
	o.io.SetState(word)
	o.publishState(ctx, word, c, extra)
	o.say(fmt.Sprintf("%-8s", word), c.say)
}

// say prints one narration line: "08:00 bulb-1     off      (phone-1 left home, on ...)".
func (o *out) say(what, why string) {
	o.io.Say(fmt.Sprintf("%s %-10s %s (%s)", sim.FormatTimeOfDay(o.tod()), o.cfg.ID, what, why))
}

// subscribe subscribes to each filter at the device's QoS. A cancelled ctx is not an error:
// the caller's loop sees it and returns.
func subscribe(ctx context.Context, io sim.IO, qos byte, filters ...string) error {
	for _, f := range filters {
		if _, err := io.Subscribe(ctx, f, qos); err != nil && ctx.Err() == nil {
			return fmt.Errorf("subscribe %s: %w", f, err)
		}
	}
	return nil
}

// maxPayload bounds what a device tries to parse; real control payloads are tiny.
const maxPayload = 64 << 10

// decode parses a JSON payload into v.
func decode(payload []byte, v any) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("payload too large (%d bytes)", len(payload))
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	return nil
}

// field decodes a JSON object and returns its required field name, e.g. {"on": true}.
func field[T any](payload []byte, name string) (T, error) {
	var zero, v T
	var obj map[string]json.RawMessage
	if err := decode(payload, &obj); err != nil {
		return zero, err
	}
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return zero, fmt.Errorf("missing %q", name)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return zero, fmt.Errorf("field %q: %w", name, err)
	}
	return v, nil
}

// position is a phone's report on {prefix}/phone/{id}/position.
type position struct {
	ID   string `json:"id"`
	Away *bool  `json:"away"`
}

// presence tracks which phones are away, by phone id, from their position reports.
type presence map[string]bool

// maxPhones bounds presence, so that anyone publishing positions under made-up phone ids
// cannot grow a device's memory without limit.
const maxPhones = 256

// update records a position message and returns it as the cause of any change.
func (p presence) update(m sim.Message) (cause, error) {
	var pos position
	if err := decode(m.Payload, &pos); err != nil {
		return cause{}, err
	}
	if pos.Away == nil {
		return cause{}, errors.New(`missing "away"`)
	}
	who := pos.ID
	if who == "" { // the + level of {prefix}/phone/+/position
		levels := strings.Split(m.Topic, "/")
		who = levels[max(len(levels)-2, 0)]
	}
	if _, known := p[who]; !known && len(p) >= maxPhones {
		return cause{}, fmt.Errorf("more than %d phones in one home; ignoring %q", maxPhones, who)
	}
	p[who] = *pos.Away
	if *pos.Away {
		return onTopic(m.Topic, who+" left home"), nil
	}
	return onTopic(m.Topic, who+" came home"), nil
}

// occupied reports whether at least one phone last said it was home.
func (p presence) occupied() bool {
	for _, away := range p {
		if !away {
			return true
		}
	}
	return false
}

// empty reports whether phones have reported and all of them are away.
func (p presence) empty() bool { return len(p) > 0 && !p.occupied() }

// presenceSwitch is a switch that follows the home's presence (on while occupied, or on
// while empty) and obeys {"<field>": bool} on its /set topic until presence next changes.
type presenceSwitch struct {
	on, whenEmpty bool
	field, set    string // the /set command's JSON field and topic
	phones        presence
	last          bool // the presence condition last seen, to follow only its changes
}

func newPresenceSwitch(setTopic, field string, whenEmpty bool) *presenceSwitch {
	return &presenceSwitch{whenEmpty: whenEmpty, field: field, set: setTopic, phones: presence{}}
}

// apply takes in m and reports whether the switch changed, and why.
func (s *presenceSwitch) apply(m sim.Message) (changed bool, c cause, err error) {
	want, c := s.on, onTopic(m.Topic, "")
	if m.Topic == s.set {
		want, err = field[bool](m.Payload, s.field)
	} else if c, err = s.phones.update(m); err == nil {
		cond := s.phones.occupied()
		if s.whenEmpty {
			cond = s.phones.empty()
		}
		if cond != s.last {
			s.last, want = cond, cond
		}
	}
	if err != nil || want == s.on {
		return false, c, err
	}
	s.on = want
	return true, c, nil
}

// runPresenceSwitch runs a device that is a presenceSwitch (the bulb, the camera): it
// subscribes to the home's phone positions and its own /set topic, publishes its state as
// word(on) on every change, and calls tick every period of sched, which sends when sends(on).
func runPresenceSwitch(ctx context.Context, io sim.IO, cfg sim.DeviceConfig, sched *schedule, field string, whenEmpty bool,
	word func(on bool) string, sends func(on bool) bool, tick func(o *out, on bool)) error {
	o := newOut(cfg, io)
	set := cfg.Topic + "/set"
	if err := subscribe(ctx, io, cfg.QoS, cfg.Prefix+"/phone/+/position", set); err != nil {
		return err
	}
	sw := newPresenceSwitch(set, field, whenEmpty)
	o.state(ctx, word(false), atStart, nil)
	ticks, stop := sched.every(cfg.Period, sends(false), 0)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-ticks:
			sched.took(due, sends(sw.on))
			o.due = due
			tick(o, sw.on)
			o.due = time.Time{} // a tick that sent nothing leaves no due time for the next publish
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			if changed, c, err := sw.apply(m); err != nil {
				io.Reject(m.Topic, err)
			} else if changed {
				o.state(ctx, word(sw.on), c, nil)
			}
		}
	}
}

// parseTemperature reads a sensor's {"location": "indoor"|"outdoor"|"fixed", "celsius": 19.5}.
func parseTemperature(payload []byte) (location string, celsius float64, err error) {
	var t struct {
		Location *string  `json:"location"`
		Celsius  *float64 `json:"celsius"`
	}
	if err := decode(payload, &t); err != nil {
		return "", 0, err
	}
	switch {
	case t.Location == nil || t.Celsius == nil:
		return "", 0, errors.New(`want "location" and "celsius"`)
	case *t.Location != "indoor" && *t.Location != "outdoor" && *t.Location != "fixed":
		return "", 0, fmt.Errorf("unknown location %q", *t.Location)
	case *t.Celsius < -100 || *t.Celsius > 100:
		return "", 0, fmt.Errorf("%g °C is out of range", *t.Celsius)
	}
	return *t.Location, *t.Celsius, nil
}

// parseSetpoint reads a heater set point: {"celsius": 22} or a bare number "22".
func parseSetpoint(payload []byte) (float64, error) {
	if len(payload) > maxPayload {
		return 0, fmt.Errorf("payload too large (%d bytes)", len(payload))
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(payload)), 64)
	if err != nil {
		if v, err = field[float64](payload, "celsius"); err != nil {
			return 0, err
		}
	}
	if !validSetpoint(v) { // also catches NaN and Inf from ParseFloat
		return 0, fmt.Errorf("set point %g °C is outside 5..35", v)
	}
	return v, nil
}

func validSetpoint(c float64) bool { return c >= 5 && c <= 35 }

// onOff is the state word of a switch.
func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
