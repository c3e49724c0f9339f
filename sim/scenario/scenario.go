// Package scenario loads and validates fleetsim scenario files.
//
// A scenario is YAML. Decoding is strict (unknown fields are errors) and validation reports
// every problem at once, each as "file:line: message", in the manner of k6's Validate.
// Runtime state never lives here: a Scenario is plain configuration.
//
// Loading a file (Parse, Load, LoadWith) goes in steps:
//
//  1. document.go reads the YAML into a node tree;
//  2. the one decoder (decode.go) decodes the tree strictly into the file structs of file.go,
//     which keep where every value was written;
//  3. Overrides, such as fleetsim run's --day, replace values of the file;
//  4. the checker (check.go) checks every value, reporting each problem with its line;
//  5. build.go builds the Scenario from the checked values.
package scenario

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/measure"
)

// Embedded is the Broker value that asks for the in-process broker.
const Embedded = "embedded"

// Connection modes.
const (
	PerDevice = "per-device" // one MQTT connection per device
	PerHome   = "per-home"   // one connection per home, as devices behind a hub
	Pool      = "pool"       // a fixed pool of Connections.PoolSize connections
)

// Scenario is a validated scenario file.
type Scenario struct {
	File        string        // path it was loaded from, for messages
	Name        string        // short name, used in metrics labels and client ids
	Description string        // one paragraph shown when the run starts
	Broker      string        // Embedded or a broker URL (tcp://, ssl://, ws://, wss://; see ParseBroker)
	Duration    time.Duration // how long to run; 0 runs until interrupted
	Day         time.Duration // wall time of one simulated day; 0 means real time
	Start       time.Duration // simulated time of day when the run starts
	Seed        uint64        // seed for every random choice
	Homes       int           // number of homes; every group is instantiated per home
	TopicPrefix string        // per-home prefix template, e.g. "home/{home}"
	Connections Connections
	Thresholds  []measure.Threshold // pass/fail conditions on the run's result
	Groups      []Group
}

// Connections says how devices share MQTT connections, and over what network.
type Connections struct {
	Mode     string // PerDevice, PerHome or Pool
	PoolSize int    // for Pool
	// Link shapes the connections (nil: unshaped). With PerHome or Pool, every connection
	// gets a link of its own, which the devices riding it share, as devices behind a hub
	// share its radio. With PerDevice it is the link of every device whose group has none
	// of its own (see DeviceLink).
	Link *link.Profile
	// Persistent asks for sessions that survive a drop (CleanSession=false): the broker
	// keeps subscriptions and queues QoS 1/2 messages, and in-flight publishes are resent.
	Persistent bool
	// SessionExpiry, with Persistent under MQTT 5, is how long the broker keeps a session
	// once its connection ended (the Session Expiry Interval); 0: for good.
	SessionExpiry time.Duration
	// ConnectRate, if positive, opens at most this many connections per second: a ramp up
	// instead of everyone at once.
	ConnectRate float64
	// SourceAddresses, if set, are the local addresses connections are opened from, in
	// turn, for more connections than one address's ephemeral ports allow (~28k).
	SourceAddresses []netip.Addr
	// Client is the MQTT client the connections use: ClientPaho, ClientLean, or empty
	// for the default (lean), which a run's configuration may override.
	Client string
	// Protocol is the MQTT version the connections speak: Protocol311, Protocol5 (lean
	// client only), or empty for the default (3.1.1).
	Protocol string
}

// Group is one entry of the devices list: Count devices of one Kind in every home.
type Group struct {
	Kind     string        // kind name, a key of the kinds map
	Name     string        // id stem: devices are Name-1, Name-2, ... (defaults to Kind)
	Count    int           // devices per home
	Homes    int           // 0: the group is in every home; N: only in homes 1..N
	Period   time.Duration // telemetry period; 0 means none
	QoS      byte          // QoS of the devices' publishes
	Retained bool          // retain state publishes
	MaxRate  float64       // publish rate limit per device, messages per second
	Topic    string        // base topic template, e.g. "{prefix}/{kind}/{id}"
	Link     *link.Profile // each device's own link; only with PerDevice connections (see DeviceLink)
	// MQTT 5 only: the user properties of every publish (values may use {id}, {home},
	// {kind}; see DeviceUserProperties), and the Message Expiry Interval (0: none).
	UserProperties []UserProperty
	MessageExpiry  time.Duration
	Params         any // decoded params, from the kind's NewParams
	Line           int // line of the group in the file
}

// Defaults applied when a field is absent.
const (
	DefaultTopicPrefix = "home/{home}"
	DefaultTopic       = "{prefix}/{kind}/{id}"
	DefaultMaxRate     = 10.0
)

// Prefix expands the topic prefix template for home h.
func (s *Scenario) Prefix(home int) string {
	return strings.ReplaceAll(s.TopicPrefix, "{home}", strconv.Itoa(home))
}

// DeviceID is the id of the n-th device (from 1) of group g.
func (g *Group) DeviceID(n int) string { return g.Name + "-" + strconv.Itoa(n) }

// DeviceConfig returns the configuration of the n-th device (from 1) of group g in home h.
// Clock and Shared are left for the runner to fill in.
func (s *Scenario) DeviceConfig(g *Group, home, n int) sim.DeviceConfig {
	id := g.DeviceID(n)
	prefix := s.Prefix(home)
	topic := expand(g.Topic, map[string]string{
		"prefix": prefix, "home": strconv.Itoa(home), "kind": g.Kind, "name": g.Name, "id": id, "n": strconv.Itoa(n),
	})
	return sim.DeviceConfig{
		ID:       id,
		Kind:     g.Kind,
		Home:     home,
		Prefix:   prefix,
		Topic:    topic,
		Period:   g.Period,
		QoS:      g.QoS,
		Retained: g.Retained,
		MaxRate:  g.MaxRate,
	}
}

// DeviceLink is the link profile of each device of group g when every device has a
// connection of its own (PerDevice): the group's link, or else the connections' link; nil
// for none. With shared connections devices have no link of their own: Connections.Link
// shapes each shared connection.
func (s *Scenario) DeviceLink(g *Group) *link.Profile {
	if s.Connections.Mode != PerDevice {
		return nil
	}
	if g.Link != nil {
		return g.Link
	}
	return s.Connections.Link
}

// InHome reports whether the group has devices in home h.
func (g *Group) InHome(h int) bool { return g.Homes == 0 || h <= g.Homes }

// DeviceCount is the number of devices in the whole run.
func (s *Scenario) DeviceCount() int {
	n := 0
	for i := range s.Groups {
		g := &s.Groups[i]
		homes := s.Homes
		if g.Homes > 0 {
			homes = min(homes, g.Homes)
		}
		n += g.Count * homes
	}
	return n
}

// ConnectionCount is how many MQTT connections the connection mode needs.
func (s *Scenario) ConnectionCount() int {
	switch s.Connections.Mode {
	case PerDevice:
		return s.DeviceCount()
	case Pool:
		return min(s.Connections.PoolSize, s.DeviceCount())
	default:
		return s.Homes
	}
}

// DevicesPerHome is the number of devices in one home (the first, which has them all).
func (s *Scenario) DevicesPerHome() int {
	n := 0
	for _, g := range s.Groups {
		n += g.Count
	}
	return n
}
