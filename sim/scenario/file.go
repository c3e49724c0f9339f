package scenario

import (
	"fmt"
	"net/netip"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
)

// The file structs: a scenario file as written, which the decoder fills in and the checker
// reads. Every field is a value[T], which keeps where it was written, so that every problem
// can say file:line. Their yaml tags are the file's field names, in the order they are
// documented (unknown-field messages list them in that order).

// scenarioFile is the top level of a scenario file.
type scenarioFile struct {
	Name        value[string]          `yaml:"name"`
	Description value[string]          `yaml:"description"`
	Broker      value[string]          `yaml:"broker"`
	Duration    value[time.Duration]   `yaml:"duration"`
	Day         value[time.Duration]   `yaml:"day"`
	Start       value[timeOfDay]       `yaml:"start"`
	Seed        value[uint64]          `yaml:"seed"`
	Homes       value[int64]           `yaml:"homes"`
	TopicPrefix value[string]          `yaml:"topic_prefix"`
	Connections value[connectionsFile] `yaml:"connections"`
	Thresholds  value[thresholdList]   `yaml:"thresholds"`
	Devices     value[groupList]       `yaml:"devices"`
}

func (scenarioFile) expected() string {
	return "a mapping of scenario fields (name, devices, ...) at the top level"
}

// groupList is the devices list.
type groupList []value[groupFile]

func (groupList) expected() string { return "a list of device groups" }

// groupFile is one entry of the devices list.
type groupFile struct {
	Kind     value[string]        `yaml:"kind"`
	Name     value[string]        `yaml:"name"`
	Count    value[int64]         `yaml:"count"`
	Homes    value[int64]         `yaml:"homes"`
	Period   value[time.Duration] `yaml:"period"`
	QoS      value[int64]         `yaml:"qos"`
	Retained value[bool]          `yaml:"retained"`
	MaxRate  value[float64]       `yaml:"max_rate"`
	Topic    value[string]        `yaml:"topic"`
	// MQTT 5 (mqtt5.go)
	UserProperties value[userProps]     `yaml:"user_properties"`
	MessageExpiry  value[time.Duration] `yaml:"message_expiry"`
	Link           value[linkFile]      `yaml:"link"`
	Params         value[raw]           `yaml:"params"` // decoded once the kind is known

	// Set by the checker: the group's kind, if known, and the params decoded for it.
	kind   sim.Kind
	kindOK bool
	params any
}

func (groupFile) expected() string { return "a mapping with at least a kind" }

// connectionsFile is the connections field. It is written either as a mode alone
// (`connections: per-device`), or as a mapping (`{pool: 4, link: wifi}`).
type connectionsFile struct {
	Mode            value[raw]           `yaml:"mode"` // read by the checker, whose messages list the modes
	Pool            value[int64]         `yaml:"pool"`
	Link            value[linkFile]      `yaml:"link"`
	Session         value[string]        `yaml:"session"`
	SessionExpiry   value[time.Duration] `yaml:"session_expiry"`
	ConnectRate     value[float64]       `yaml:"connect_rate"`
	SourceAddresses value[addrList]      `yaml:"source_addresses"`
	Client          value[string]        `yaml:"client"`
	Protocol        value[string]        `yaml:"protocol"`

	short bool // written as a mode alone, which is then Mode's node
}

// decodeNode decodes either form of the connections field.
func (c *connectionsFile) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		c.short = true
		c.Mode.node = n
		return true
	case yaml.MappingNode:
		return d.decodeStruct(n, reflect.ValueOf(c).Elem(), path)
	}
	d.badValue(n, "%s: expected %s, %s, {pool: N} or a mapping such as {mode: %s, link: wifi}, got %s",
		path, PerDevice, PerHome, PerHome, describe(n))
	return false
}

// raw is a value the decoder leaves as written, for the checker to read from its node.
type raw struct{}

func (*raw) decodeNode(*decoder, *yaml.Node, string) bool { return true }

// timeOfDay is a time of day written "HH:MM", as the time since midnight.
type timeOfDay time.Duration

func (t *timeOfDay) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.badValue(n, "%s: expected a time of day \"HH:MM\", got %s", path, describe(n))
		return false
	}
	v, err := sim.ParseTimeOfDay(n.Value)
	if err != nil {
		d.badValue(n, "%s: %v", path, err)
		return false
	}
	*t = timeOfDay(v)
	return true
}

// thresholdList is a list of k6-style thresholds ("latency_p99<50ms"), each checked where
// it stands. Those that fail are left out.
type thresholdList []measure.Threshold

func (l *thresholdList) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	if n.Kind != yaml.SequenceNode {
		d.badValue(n, "%s: expected a list such as [\"latency_p99<50ms\", \"loss==0\"], got %s", path, describe(n))
		return false
	}
	for i, item := range n.Content {
		v := deref(item)
		if v == nil || v.Kind != yaml.ScalarNode {
			d.addf(item.Line, "%s[%d]: expected a threshold such as \"loss==0\", got %s", path, i, describe(v))
			continue
		}
		t, err := measure.Parse(v.Value)
		if err != nil {
			d.addf(v.Line, "%s[%d]: %v", path, i, err)
			continue
		}
		*l = append(*l, t)
	}
	return true
}

// addrList is a list of local IP addresses. Those that fail are left out.
type addrList []netip.Addr

func (l *addrList) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.badValue(n, "%s: expected a list of local IP addresses such as [127.0.0.1, 127.0.0.2], got %s", path, describe(n))
		return false
	}
	for i, item := range n.Content {
		v := deref(item)
		if v != nil && v.Kind == yaml.ScalarNode {
			if a, err := netip.ParseAddr(v.Value); err == nil {
				*l = append(*l, a)
				continue
			}
		}
		d.addf(item.Line, "%s[%d]: expected an IP address such as 127.0.0.2, got %s", path, i, describe(v))
	}
	return true
}

// value is a value of the file with where it came from: the file, or a command-line
// override (see Overrides).
type value[T any] struct {
	V T // the value decoded; the zero value when absent, null or not decodable
	pos
}

// pos is where a value came from, and what became of it.
type pos struct {
	key  *yaml.Node // the field's key; nil for a list item, or when absent
	node *yaml.Node // the value as written (perhaps an alias); nil when absent
	flag string     // the command-line flag that gave the value, for an override

	bad    bool // decoding or checking rejected the value, and said why
	big    bool // an integer too large for V, for the checker to report with the field's range
	faults int  // problems reported while decoding the value, those inside it included
}

// decodeField records where the value is written and decodes it into V.
func (v *value[T]) decodeField(d *decoder, key, n *yaml.Node, path string) {
	v.key, v.node = key, n
	if isNull(n) {
		return
	}
	into := reflect.ValueOf(&v.V).Elem()
	if overflows(deref(n), into) {
		v.big = true // the checker knows the field's range, which says more than V's
		return
	}
	before := d.failures
	v.bad = !d.decode(n, into, path)
	v.faults = d.failures - before
}

// or returns the value, or def when the value is absent or was rejected.
func (v *value[T]) or(def T) T {
	if v.ok() {
		return v.V
	}
	return def
}

// text renders the value as written, for "X is out of range" messages.
func (v *value[T]) text() string {
	if v.flag != "" {
		return fmt.Sprint(v.V)
	}
	return scalarText(v.node)
}

// given reports whether the file or a flag gives the value (null does not).
func (p *pos) given() bool { return p.flag != "" || !isNull(p.node) }

// ok reports whether the value is given and was accepted.
func (p *pos) ok() bool { return p.given() && !p.bad && !p.big }

// valid reports whether the value is absent or accepted: what later checks that depend on
// it need to know.
func (p *pos) valid() bool { return !p.given() || p.ok() }

// line is the line of the value (0 for a flag's).
func (p *pos) line() int {
	if p.node == nil {
		return 0
	}
	return max(p.node.Line, 1)
}

// name is what messages call the value: its path in the file, or the flag that gave it.
func (p *pos) name(path string) string {
	if p.flag != "" {
		return p.flag
	}
	return path
}
