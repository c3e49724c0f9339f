package scenario

import (
	"net/netip"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Building the Scenario from the file structs: each value as written, or its default when
// absent or rejected by the checker. The checker builds one as a draft for the checks that
// involve several groups; once every check has passed, that draft is the result.

// build makes the Scenario the file describes.
func (f *scenarioFile) build(file string) *Scenario {
	s := &Scenario{
		File:        file,
		Name:        f.Name.or(""),
		Description: f.Description.or(""),
		Broker:      f.Broker.or(Embedded),
		Duration:    f.Duration.or(0),
		Day:         f.Day.or(0),
		Start:       time.Duration(f.Start.or(0)),
		Seed:        f.Seed.or(1),
		Homes:       int(f.Homes.or(1)),
		TopicPrefix: f.TopicPrefix.or(DefaultTopicPrefix),
		Connections: Connections{Mode: PerHome},
		Thresholds:  []measure.Threshold(f.Thresholds.or(nil)),
	}
	if f.Connections.ok() {
		s.Connections = f.Connections.V.build()
	}
	groups := f.Devices.or(nil)
	s.Groups = make([]Group, len(groups))
	for i := range groups {
		s.Groups[i] = groups[i].V.build(max(groups[i].node.Line, 1))
	}
	return s
}

// build makes the Connections a checked connections field describes.
func (c *connectionsFile) build() Connections {
	out := Connections{
		Persistent:      c.Session.or(CleanSession) == PersistentSession,
		SessionExpiry:   c.SessionExpiry.or(0),
		ConnectRate:     c.ConnectRate.or(0),
		SourceAddresses: []netip.Addr(c.SourceAddresses.or(nil)),
		Client:          c.Client.or(""),
		Protocol:        c.Protocol.or(""),
	}
	switch {
	case c.Pool.ok():
		out.Mode, out.PoolSize = Pool, int(c.Pool.V)
	case !c.Mode.given():
		out.Mode = PerHome
	default:
		out.Mode = deref(c.Mode.node).Value
	}
	if c.Link.ok() {
		out.Link = c.Link.V.resolved
	}
	return out
}

// build makes the Group a device group describes; line is the group's.
func (g *groupFile) build(line int) Group {
	out := Group{
		Kind:           g.Kind.or(""),
		Name:           g.name(),
		Count:          int(g.Count.or(1)),
		Homes:          int(g.Homes.or(0)),
		Period:         g.Period.or(0),
		QoS:            byte(g.QoS.or(0)),
		Retained:       g.Retained.or(false),
		MaxRate:        g.MaxRate.or(DefaultMaxRate),
		Topic:          g.Topic.or(DefaultTopic),
		UserProperties: []UserProperty(g.UserProperties.or(nil)),
		MessageExpiry:  g.MessageExpiry.or(0),
		Params:         g.params,
		Line:           line,
	}
	if g.Link.ok() {
		out.Link = g.Link.V.resolved
	}
	return out
}

// name is the group's name: as written, or else its kind's.
func (g *groupFile) name() string {
	if g.Name.given() {
		return g.Name.or("")
	}
	return g.Kind.or("")
}
