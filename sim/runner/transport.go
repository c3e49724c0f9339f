package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/lean"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// mqttConn is one of a run's MQTT connections, whichever client carries it: what the
// devices use (connection), and what the run watches and closes.
type mqttConn interface {
	connection
	Up() bool
	Close()
}

// MQTTClient is the MQTT client the run's connections use (see client).
func (c Config) MQTTClient() string { return c.client() }

// client is the MQTT client the run's connections use: Config.Client, else the scenario's,
// else lean (DefaultClient).
func (c Config) client() string {
	switch {
	case c.Client != "":
		return c.Client
	case c.Scenario.Connections.Client != "":
		return c.Scenario.Connections.Client
	}
	return DefaultClient
}

// DefaultClient is the client of a run that names none: lean, made for load. Against
// mosquitto (make bench, same run) it delivered 2.5 times paho's floor at QoS 0 and 2.7
// times at QoS 1, at about a third of the CPU a message and a fifth of the memory a
// connection, and it pipelines a load device's publishes. paho stays the reference, with
// the same behaviour tests: --client paho, or connections.client: paho.
const DefaultClient = scenario.ClientLean

// protocol is the MQTT version the run's connections speak: Config.Protocol, else the
// scenario's, else 3.1.1.
func (c Config) protocol() string {
	switch {
	case c.Protocol != "":
		return c.Protocol
	case c.Scenario.Connections.Protocol != "":
		return c.Scenario.Connections.Protocol
	}
	return scenario.Protocol311
}

// ErrProtocol is a run asked for MQTT 5 on the paho client, which speaks 3.1.1 here.
var ErrProtocol = errors.New("MQTT 5 needs the lean client")

// ErrNeedsMQTT5 is a run of a scenario with MQTT 5 settings (user properties, message or
// session expiry) that speaks MQTT 3.1.1.
var ErrNeedsMQTT5 = errors.New("the scenario's MQTT 5 settings need protocol 5")

// checkTransport says whether the client can speak the protocol, and the protocol carry
// the scenario's settings.
func (c Config) checkTransport() error {
	if c.protocol() == scenario.Protocol5 && c.client() != scenario.ClientLean {
		return fmt.Errorf("%w (paho speaks MQTT 3.1.1 here)", ErrProtocol)
	}
	if uses := c.Scenario.MQTT5Uses(); uses != "" && c.protocol() != scenario.Protocol5 {
		return fmt.Errorf("%w (connections.protocol: 5, on the lean client), which this run does not speak: %s", ErrNeedsMQTT5, uses)
	}
	return nil
}

// malformed reports whether a connection dropped for bytes from the broker that did not
// decode.
func malformed(lost error) bool { return errors.Is(lost, lean.ErrMalformed) }

// refused reports whether the broker refused a publish with an MQTT 5 reason code: it
// will not deliver it.
func refused(err error) bool { return errors.Is(err, lean.ErrRefused) }

// dialConn opens one connection with the run's client.
func dialConn(ctx context.Context, cfg Config, o mqttconn.Options, clientID string) (mqttConn, error) {
	if cfg.client() == scenario.ClientLean {
		proto := lean.MQTT311
		if cfg.protocol() == scenario.Protocol5 {
			proto = lean.MQTT5
		}
		c, err := lean.Dial(ctx, lean.Config{Options: o, Protocol: proto, SessionExpiry: cfg.Scenario.Connections.SessionExpiry}, clientID)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := mqttconn.Dial(ctx, o, clientID)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// propsConn is a connection whose publishes carry a device's MQTT 5 properties (its
// group's user properties and message expiry), made once for the device.
type propsConn struct {
	connection
	pub   *lean.Conn
	props *lean.Props
}

func (c *propsConn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return c.pub.PublishWith(ctx, topic, payload, qos, retained, c.props)
}

// withProps gives each device whose group has MQTT 5 publish properties a connection that
// sends them: the devices are in the order build made them, each on its conn.
func withProps(cfg Config, devices []*port, conns []mqttConn, devConn []int) {
	s := cfg.Scenario
	if cfg.client() != scenario.ClientLean {
		return // checkTransport refused the run already
	}
	i := 0
	for home := 1; home <= s.Homes; home++ {
		if !cfg.Shard.Owns(home) {
			continue
		}
		for gi := range s.Groups {
			g := &s.Groups[gi]
			if !g.InHome(home) {
				continue
			}
			for n := 1; n <= g.Count; n++ {
				d := devices[i]
				lc, _ := conns[devConn[i]].(*lean.Conn)
				i++
				if lc == nil || len(g.UserProperties) == 0 && g.MessageExpiry == 0 {
					continue
				}
				props := &lean.Props{MessageExpiry: g.MessageExpiry}
				for _, p := range g.DeviceUserProperties(home, n) {
					props.User = append(props.User, packets.UserProperty{Key: p.Key, Val: p.Value})
				}
				if linked, ok := d.conn.(*linkedConn); ok {
					d.conn = &linkedConn{connection: &propsConn{connection: linked.connection, pub: lc, props: props}, held: linked.held}
					continue
				}
				d.conn = &propsConn{connection: d.conn, pub: lc, props: props}
			}
		}
	}
}
