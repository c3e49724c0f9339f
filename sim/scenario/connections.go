package scenario

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Session kinds.
const (
	CleanSession      = "clean"      // the broker forgets a client's session when it goes
	PersistentSession = "persistent" // CleanSession=false: subscriptions and QoS 1/2 messages survive a drop
)

// MQTT clients (transports) a run's connections may use.
const (
	ClientPaho = "paho" // eclipse/paho.mqtt.golang: the reference
	ClientLean = "lean" // fleetsim's own, made for load (sim/lean)
)

// Clients are the valid values of connections.client.
var Clients = []string{ClientPaho, ClientLean}

// MQTT protocol versions a run's connections may speak (connections.protocol).
const (
	Protocol311 = "3.1.1" // the default
	Protocol5   = "5"     // the lean client only
)

// connections checks the connections field and reports whether it is absent or good. When
// its mode is not good, the whole field is rejected (the default, per-home, stands in).
func (c *checker) connections(v *value[connectionsFile]) bool {
	if !v.given() {
		return true
	}
	if !v.ok() {
		return false
	}
	cf := &v.V
	var ok bool
	if cf.short {
		ok = c.shortMode(v)
	} else {
		ok = c.mode(v)
		c.checkLink(&cf.Link, "connections.link")
		c.session(&cf.Session)
		c.sessionExpiry(cf)
		c.client(&cf.Client)
		c.protocol(cf)
		if r := &cf.ConnectRate; r.ok() && !(r.V > 0 && r.V <= MaxConnectRate) {
			c.reject(&r.pos, "connections.connect_rate", "%s is out of range (connections per second, > 0 and <= %d)", r.text(), MaxConnectRate)
		}
	}
	if !ok {
		v.bad = true
	}
	return ok
}

// shortMode checks the connections written as a mode alone: per-device or per-home (a
// pool needs the mapping form, for its size).
func (c *checker) shortMode(v *value[connectionsFile]) bool {
	n := deref(v.V.Mode.node)
	switch n.Value {
	case PerDevice, PerHome:
		if n.ShortTag() == "!!str" {
			return true
		}
	case Pool:
		c.addf(v.line(), "connections: a pool needs a size; write {pool: N} (N 1..%d)", MaxPoolSize)
		return false
	}
	msg := fmt.Sprintf("connections: expected %s, %s or {pool: N}, got %s", PerDevice, PerHome, describe(n))
	if s := suggest(n.Value, []string{PerDevice, PerHome}); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	c.addf(v.line(), "%s", msg)
	return false
}

// mode checks the mode and pool size of connections written as a mapping: a pool size
// implies mode pool, and mode pool needs a pool size.
func (c *checker) mode(v *value[connectionsFile]) bool {
	cf := &v.V
	mode, ok := c.modeName(&cf.Mode)
	switch {
	case cf.Pool.given():
		if ok && cf.Mode.given() && mode != Pool {
			c.addf(max(cf.Pool.key.Line, 1), "connections.pool: a pool size goes with mode: %s (or no mode), not mode: %s", Pool, mode)
			return false
		}
		return c.intIn(&cf.Pool, "connections.pool", 1, MaxPoolSize) && ok
	case mode == Pool:
		c.addf(cf.Mode.line(), "connections: mode: %s needs a size; add pool: N (N 1..%d)", Pool, MaxPoolSize)
		return false
	case !cf.Mode.given() && (cf.Client.given() || cf.Protocol.given()) && !cf.Link.given():
		return ok // {client: lean} or {protocol: 5} alone keeps the default mode
	case !cf.Mode.given():
		c.addf(max(deref(v.node).Line, 1), "connections: missing field \"pool\" (the number of connections, 1..%d) or \"mode\" (%s or %s)", MaxPoolSize, PerDevice, PerHome)
		return false
	}
	return ok
}

// modeName checks connections.mode, if given, and returns it.
func (c *checker) modeName(v *value[raw]) (string, bool) {
	if !v.given() {
		return "", true
	}
	m := deref(v.node)
	if m.Kind == yaml.ScalarNode && m.ShortTag() == "!!str" && (m.Value == PerDevice || m.Value == PerHome || m.Value == Pool) {
		return m.Value, true
	}
	msg := fmt.Sprintf("expected %s, %s or %s, got %s", PerDevice, PerHome, Pool, describe(m))
	if m.Kind == yaml.ScalarNode {
		if s := suggest(m.Value, []string{PerDevice, PerHome, Pool}); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
	}
	c.reject(&v.pos, "connections.mode", "%s", msg)
	return "", false
}

// session checks connections.session.
func (c *checker) session(v *value[string]) {
	if v.ok() && v.V != CleanSession && v.V != PersistentSession {
		c.reject(&v.pos, "connections.session", "expected %s or %s, got %q", CleanSession, PersistentSession, v.V)
	}
}

// client checks connections.client.
func (c *checker) client(v *value[string]) {
	if !v.ok() || slices.Contains(Clients, v.V) {
		return
	}
	msg := fmt.Sprintf("expected %s or %s, got %q", ClientPaho, ClientLean, v.V)
	if s := suggest(v.V, Clients); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	c.reject(&v.pos, "connections.client", "%s", msg)
}

// protocol checks connections.protocol, and that MQTT 5 goes with the lean client.
func (c *checker) protocol(cf *connectionsFile) {
	v := &cf.Protocol
	switch {
	case !v.ok():
	case v.V != Protocol311 && v.V != Protocol5:
		c.reject(&v.pos, "connections.protocol", "expected %s or %s, got %q", Protocol311, Protocol5, v.V)
	case v.V == Protocol5 && cf.Client.ok() && cf.Client.V == ClientPaho:
		c.reject(&v.pos, "connections.protocol", "MQTT 5 needs client: %s (paho speaks 3.1.1 here)", ClientLean)
	}
}

// sharedLinkExample writes c's mode in the mapping form with a link, for messages.
func sharedLinkExample(c Connections) string {
	if c.Mode == Pool {
		return fmt.Sprintf("{pool: %d, link: ...}", c.PoolSize)
	}
	return fmt.Sprintf("{mode: %s, link: ...}", c.Mode)
}
