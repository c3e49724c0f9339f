package scenario

import (
	"os"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// Limits enforced by the loader.
const (
	MaxNameLen     = 64           // scenario and group names
	MaxHomes       = 100_000      // homes
	MaxCount       = 1_000_000    // devices per group per home
	MaxDevices     = 10_000_000   // devices in the whole run (homes × devices per home)
	MaxPoolSize    = 100_000      // connections in a pool
	MaxConnectRate = 1_000_000    // connections per second
	MaxRateLimit   = 1e6          // max_rate, publishes per second per device
	MaxTopicBytes  = topic.MaxLen // MQTT limit on a topic name, after expansion
)

// Load reads the scenario file at path and parses it with Parse. If the file cannot be read
// the error from os.ReadFile is returned unchanged; every other error is an *Errors.
func Load(path string, kinds map[string]sim.Kind) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, kinds)
}

// Parse parses and validates a scenario. file names it in messages. kinds are the device
// kinds that groups may use, by name.
//
// Decoding is strict: unknown fields anywhere (including inside a group's params, checked
// against the kind's params type) are errors. Each group's params are decoded into a fresh
// value from the kind's NewParams and checked by building one device with them.
//
// On failure the error is an *Errors listing every problem found, sorted by line.
func Parse(file string, data []byte, kinds map[string]sim.Kind) (*Scenario, error) {
	// The steps of loading a file: read its YAML, decode it into the file structs, then
	// check it and build the Scenario.
	d := newDecoder(file)
	root := d.document(data)
	if root == nil {
		return nil, d.errors()
	}
	var f value[scenarioFile]
	f.decodeField(d, nil, root, "")
	if d.overspent {
		return nil, d.errors()
	}
	s := newChecker(d, kinds).check(&f)
	if len(d.problems) > 0 {
		return nil, d.errors()
	}
	return s, nil
}
