package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MQTT 5's settings: a device group's user properties and message expiry, and the
// connections' session expiry. They need protocol 5 (and so the lean client): a file that
// says otherwise is refused here; a run whose protocol comes from elsewhere (a flag) is
// checked by the runner (Scenario.MQTT5Uses).

// UserProperty is one MQTT 5 user property of a group's publishes, as written: its value
// may use {id}, {home} and {kind} (see Scenario.DeviceUserProperties).
type UserProperty struct {
	Key, Value string
}

// Limits of the MQTT 5 settings.
const (
	MaxUserProperties = 32
	MaxPropertyLen    = 1024                                    // bytes of a key or of a value as written
	MaxExpiry         = time.Duration(0xFFFFFFFE) * time.Second // the largest expiry interval that expires
)

// propertyPlaceholders are the placeholders a user property's value may use.
var propertyPlaceholders = []string{"id", "home", "kind"}

// userProps is a group's user_properties: a mapping of names to values, kept in the
// order written. Entries that fail are left out.
type userProps []UserProperty

func (userProps) expected() string {
	return `a mapping of user property names to values, such as {site: "{home}", dev: "{id}"}`
}

func (l *userProps) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.badValue(n, "%s: expected %s, got %s", path, userProps(nil).expected(), describe(n))
		return false
	}
	pairs := d.pairs(n, path)
	if len(pairs) > MaxUserProperties {
		d.badValue(n, "%s: %d user properties, at most %d", path, len(pairs), MaxUserProperties)
		return false
	}
	for _, kv := range pairs {
		k, v := deref(kv.key), deref(kv.val)
		where := path + "." + k.Value
		switch {
		case k.Value == "" || len(k.Value) > MaxPropertyLen:
			d.addf(max(k.Line, 1), "%s: a user property's name must have 1 to %d bytes", path, MaxPropertyLen)
		case v == nil || v.Kind != yaml.ScalarNode || isNull(v):
			d.addf(max(kv.key.Line, 1), "%s: expected a text value, got %s", where, describe(v))
		case len(v.Value) > MaxPropertyLen:
			d.addf(max(v.Line, 1), "%s: the value has %d bytes, at most %d", where, len(v.Value), MaxPropertyLen)
		default:
			if msg := checkPlaceholders(v.Value); msg != "" {
				d.addf(max(v.Line, 1), "%s: %s", where, msg)
				continue
			}
			*l = append(*l, UserProperty{Key: k.Value, Value: v.Value})
		}
	}
	return true
}

// checkPlaceholders says what is wrong with the placeholders of a user property's value,
// or "".
func checkPlaceholders(s string) string {
	for rest := s; ; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return ""
		}
		if rest[i] == '}' {
			return fmt.Sprintf("%s has a \"}\" that was not opened (placeholders look like {id})", quote(s))
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] == '{' {
			return fmt.Sprintf("%s has a \"{\" that is not closed (placeholders look like {id})", quote(s))
		}
		name := rest[i+1 : i+1+j]
		if !contains(propertyPlaceholders, name) {
			msg := fmt.Sprintf("unknown placeholder %s (known: %s)", quote("{"+name+"}"), placeholderList(propertyPlaceholders))
			if sg := suggest(name, propertyPlaceholders); sg != "" {
				msg += fmt.Sprintf("; did you mean \"{%s}\"?", sg)
			}
			return msg
		}
		rest = rest[i+j+2:]
	}
}

// expiry checks an expiry interval: at least a second, at most MaxExpiry.
func (c *checker) expiry(v *value[time.Duration], path string) {
	if v.ok() && (v.V < time.Second || v.V > MaxExpiry) {
		c.reject(&v.pos, path, "%s is out of range (1s to %v; whole seconds, rounded up)", v.text(), MaxExpiry)
	}
}

// sessionExpiry checks connections.session_expiry, which goes with persistent sessions.
func (c *checker) sessionExpiry(cf *connectionsFile) {
	v := &cf.SessionExpiry
	c.expiry(v, "connections.session_expiry")
	switch {
	case !v.ok():
	case cf.Session.or(CleanSession) != PersistentSession:
		c.reject(&v.pos, "connections.session_expiry", "goes with session: %s (a clean session ends with its connection)", PersistentSession)
	case cf.Protocol.ok() && cf.Protocol.V != Protocol5 || cf.Client.ok() && cf.Client.V == ClientPaho:
		c.reject(&v.pos, "connections.session_expiry", "needs protocol: %s on the lean client (MQTT 3.1.1 sessions have no expiry)", Protocol5)
	}
}

// groupMQTT5 refuses a group's MQTT 5 settings when the file's connections say 3.1.1 or
// paho.
func (c *checker) groupMQTT5(f *scenarioFile, groups []*groupCheck) {
	cf := f.Connections.V
	var why string
	switch {
	case !f.Connections.ok():
		return
	case cf.Protocol.ok() && cf.Protocol.V != Protocol5:
		why = fmt.Sprintf("the connections speak MQTT %s (connections.protocol, line %d)", cf.Protocol.V, cf.Protocol.line())
	case cf.Client.ok() && cf.Client.V == ClientPaho:
		why = fmt.Sprintf("the paho client speaks MQTT 3.1.1 here (connections.client, line %d)", cf.Client.line())
	default:
		return
	}
	for _, g := range groups {
		for _, p := range []struct {
			pos  *pos
			name string
		}{{&g.f.UserProperties.pos, "user_properties"}, {&g.f.MessageExpiry.pos, "message_expiry"}} {
			if p.pos.ok() {
				c.reject(p.pos, g.where+"."+p.name, "needs MQTT 5, but %s", why)
			}
		}
	}
}

// MQTT5Uses names the scenario's settings that need MQTT 5 (and where they are written),
// for a run that speaks 3.1.1 to refuse; none: "".
func (s *Scenario) MQTT5Uses() string {
	var uses []string
	if s.Connections.SessionExpiry > 0 {
		uses = append(uses, "connections.session_expiry")
	}
	for _, g := range s.Groups {
		if len(g.UserProperties) > 0 {
			uses = append(uses, fmt.Sprintf("%s:%d: %s user_properties", s.File, g.Line, g.Name))
		}
		if g.MessageExpiry > 0 {
			uses = append(uses, fmt.Sprintf("%s:%d: %s message_expiry", s.File, g.Line, g.Name))
		}
	}
	return strings.Join(uses, ", ")
}

// DeviceUserProperties are the user properties of the n-th device (from 1) of group g in
// home h, placeholders expanded; nil for none.
func (g *Group) DeviceUserProperties(home, n int) []UserProperty {
	if len(g.UserProperties) == 0 {
		return nil
	}
	vals := map[string]string{"id": g.DeviceID(n), "home": strconv.Itoa(home), "kind": g.Kind}
	out := make([]UserProperty, len(g.UserProperties))
	for i, p := range g.UserProperties {
		out[i] = UserProperty{Key: p.Key, Value: expand(p.Value, vals)}
	}
	return out
}
