package runner

import (
	"context"
	"errors"

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
// else paho.
func (c Config) client() string {
	switch {
	case c.Client != "":
		return c.Client
	case c.Scenario.Connections.Client != "":
		return c.Scenario.Connections.Client
	}
	return scenario.ClientPaho
}

// protocol is the MQTT version the run's connections speak.
func (c Config) protocol() string { return "3.1.1" }

// malformed reports whether a connection dropped for bytes from the broker that did not
// decode.
func malformed(lost error) bool { return errors.Is(lost, lean.ErrMalformed) }

// dialConn opens one connection with the run's client.
func dialConn(ctx context.Context, cfg Config, o mqttconn.Options, clientID string) (mqttConn, error) {
	if cfg.client() == scenario.ClientLean {
		c, err := lean.Dial(ctx, lean.Config{Options: o}, clientID)
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
