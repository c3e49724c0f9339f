package devices

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// ClientParams are what a generic MQTT client does, like the seed's Python examples.
// "{prefix}" in filters and topics expands to the home's prefix.
type ClientParams struct {
	Subscribe []ClientSubscribe `yaml:"subscribe"`
	Publish   []ClientPublish   `yaml:"publish"`
}

// ClientSubscribe is one subscription.
type ClientSubscribe struct {
	Filter string `yaml:"filter"`
	QoS    int    `yaml:"qos"`
}

// ClientPublish is one message the client sends, once or every so often.
type ClientPublish struct {
	Topic    string `yaml:"topic"`
	Payload  string `yaml:"payload"`
	QoS      int    `yaml:"qos"`
	Retained bool   `yaml:"retained"`
	Every    string `yaml:"every"` // wall duration between sends; "" or "0s" sends once
	Count    int    `yaml:"count"` // sends in all when every is set; 0 means no limit
}

func clientKind() sim.Kind {
	return sim.NewKind("generic MQTT client: subscribes, publishes fixed payloads, prints what it receives",
		func() ClientParams { return ClientParams{} }, buildClient)
}

// sender is one parsed publish entry and its schedule.
type sender struct {
	ClientPublish
	period time.Duration // parsed Every
	sent   int
	next   time.Time
}

func buildClient(cfg sim.DeviceConfig, p ClientParams) (sim.Device, error) {
	d := &client{cfg: cfg, subs: slices.Clone(p.Subscribe)} // params may be shared by homes
	expand := func(s string) string { return strings.ReplaceAll(s, "{prefix}", cfg.Prefix) }
	for i := range d.subs {
		s := &d.subs[i]
		s.Filter = expand(s.Filter)
		err := checkQoS(s.QoS)
		if err == nil {
			err = topic.ValidFilter(s.Filter)
		}
		if err != nil {
			return nil, &sim.ParamError{Field: "subscribe", Err: fmt.Errorf("[%d]: %w", i, err)}
		}
	}
	for i, pub := range p.Publish {
		pub.Topic = expand(pub.Topic)
		s := sender{ClientPublish: pub}
		err := checkQoS(pub.QoS)
		if err == nil {
			err = topic.ValidName(pub.Topic)
		}
		if err == nil && pub.Every != "" {
			if s.period, err = time.ParseDuration(pub.Every); err == nil && s.period < 0 {
				err = fmt.Errorf("every %s is negative", s.period)
			}
		}
		if err == nil && (pub.Count < 0 || (pub.Count > 1 && s.period == 0)) {
			err = fmt.Errorf("count %d: want 0 or more, and every to repeat", pub.Count)
		}
		if err != nil {
			return nil, &sim.ParamError{Field: "publish", Err: fmt.Errorf("[%d]: %w", i, err)}
		}
		d.pubs = append(d.pubs, s)
	}
	return d, nil
}

// checkQoS checks a QoS level given in params.
func checkQoS(qos int) error {
	if qos < 0 || qos > 2 {
		return fmt.Errorf("qos %d is not 0, 1 or 2", qos)
	}
	return nil
}

type client struct {
	cfg  sim.DeviceConfig
	subs []ClientSubscribe
	pubs []sender
}

func (d *client) Run(ctx context.Context, io sim.IO) error {
	for _, s := range d.subs {
		granted, err := io.Subscribe(ctx, s.Filter, byte(s.QoS))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("subscribe %s: %w", s.Filter, err)
		}
		io.Say(fmt.Sprintf("Subscribed to %s (granted QoS %d)", s.Filter, granted))
	}
	// Like the seed's Python clients, publish only what the params say: no state topic.
	io.SetState("running")
	pubs := append([]sender(nil), d.pubs...) // this run's counts
	now := time.Now()
	for i := range pubs {
		pubs[i].next = now
	}
	for {
		wake := sendDue(ctx, io, pubs)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case m, ok := <-io.Inbox():
			if !ok {
				return nil
			}
			io.Say(fmt.Sprintf("Received %s on %s (QoS %d)", printable(m.Payload), m.Topic, m.QoS))
		}
	}
}

// sendDue publishes what is due and returns a channel that fires when the next send is,
// or nil when none is left.
func sendDue(ctx context.Context, io sim.IO, pubs []sender) <-chan time.Time {
	var next time.Time
	for i := range pubs {
		p := &pubs[i]
		if p.next.IsZero() { // all sent
			continue
		}
		if !p.next.After(time.Now()) {
			if err := io.Publish(ctx, p.Topic, []byte(p.Payload), byte(p.QoS), p.Retained); err == nil {
				io.Say(fmt.Sprintf("Published %s to %s (QoS %d)", p.Payload, p.Topic, p.QoS))
			}
			p.sent++
			if p.period == 0 || (p.Count > 0 && p.sent >= p.Count) {
				p.next = time.Time{}
				continue
			}
			p.next = p.next.Add(p.period)
		}
		if next.IsZero() || p.next.Before(next) {
			next = p.next
		}
	}
	if next.IsZero() {
		return nil
	}
	return time.After(time.Until(next))
}

// printable shows a payload on one console line: text as it is (cut short when long),
// anything else by its size.
func printable(b []byte) string {
	if !utf8.Valid(b) || strings.ContainsFunc(string(b), unicode.IsControl) {
		return fmt.Sprintf("<%d bytes>", len(b))
	}
	if r := []rune(string(b)); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return string(b)
}
