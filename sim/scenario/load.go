package scenario

import (
	"os"
	"time"

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

// Overrides are values that replace the file's, as fleetsim run's flags do. They go in
// before the file is checked, so the file's rules check them too. A problem with one is
// reported at line 0 and named after the flag that gives it, which is the field's name:
// "--day: 500ms is out of range (0 for real time, or >= 1s)". The zero Overrides changes
// nothing.
type Overrides struct {
	Broker   string         // "" keeps the file's broker (--broker)
	Duration *time.Duration // nil keeps the file's duration (--duration)
	Day      *time.Duration // nil keeps the file's day (--day)
	Seed     *uint64        // nil keeps the file's seed (--seed)
}

// apply puts the overrides into the file.
func (o Overrides) apply(f *scenarioFile) {
	if o.Broker != "" {
		f.Broker = flagValue("--broker", o.Broker)
	}
	if o.Duration != nil {
		f.Duration = flagValue("--duration", *o.Duration)
	}
	if o.Day != nil {
		f.Day = flagValue("--day", *o.Day)
	}
	if o.Seed != nil {
		f.Seed = flagValue("--seed", *o.Seed)
	}
}

// flagValue is a value given by a command-line flag.
func flagValue[T any](flag string, v T) value[T] {
	return value[T]{V: v, pos: pos{flag: flag}}
}

// Load reads the scenario file at path and parses it with Parse. If the file cannot be read
// the error from os.ReadFile is returned unchanged; every other error is an *Errors.
func Load(path string, kinds map[string]sim.Kind) (*Scenario, error) {
	return LoadWith(path, kinds, Overrides{})
}

// LoadWith is Load with some of the file's values replaced by o.
func LoadWith(path string, kinds map[string]sim.Kind, o Overrides) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, kinds, o)
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
	return parse(file, data, kinds, Overrides{})
}

// parse goes through the steps of loading a file: read its YAML, decode it into the file
// structs, put the overrides in, then check it and build the Scenario.
func parse(file string, data []byte, kinds map[string]sim.Kind, o Overrides) (*Scenario, error) {
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
	o.apply(&f.V)
	s := newChecker(d, kinds).check(&f)
	if len(d.problems) > 0 {
		return nil, d.errors()
	}
	return s, nil
}
