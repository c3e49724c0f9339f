package runner

import (
	"context"
	"errors"
	"fmt"

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

// client is the MQTT client the run's connections use: Config.Client, else the scenario's,
// else lean for MQTT 5 and paho for 3.1.1.
func (c Config) client() string {
	switch {
	case c.Client != "":
		return c.Client
	case c.Scenario.Connections.Client != "":
		return c.Scenario.Connections.Client
	case c.protocol() == scenario.Protocol5:
		return scenario.ClientLean
	}
	return scenario.ClientPaho
}

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

// checkTransport says whether the client can speak the protocol.
func (c Config) checkTransport() error {
	if c.protocol() == scenario.Protocol5 && c.client() != scenario.ClientLean {
		return fmt.Errorf("%w (paho speaks MQTT 3.1.1 here)", ErrProtocol)
	}
	return nil
}

// malformed reports whether a connection dropped for bytes from the broker that did not
// decode.
func malformed(lost error) bool { return errors.Is(lost, lean.ErrMalformed) }

// dialConn opens one connection with the run's client.
func dialConn(ctx context.Context, cfg Config, o mqttconn.Options, clientID string) (mqttConn, error) {
	if cfg.client() == scenario.ClientLean {
		proto := lean.MQTT311
		if cfg.protocol() == scenario.Protocol5 {
			proto = lean.MQTT5
		}
		c, err := lean.Dial(ctx, lean.Config{Options: o, Protocol: proto}, clientID)
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
