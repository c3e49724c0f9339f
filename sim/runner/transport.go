package runner

import (
	"context"

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

// Transport names the client and protocol the run's connections use, for the summary.
func (c Config) Transport() string {
	return c.client() + " (MQTT 3.1.1)"
}

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
