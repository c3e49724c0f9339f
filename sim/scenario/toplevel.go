package scenario

import (
	"math"
	"time"
)

// Checks of the top level's own values.

const (
	minDay    = time.Second      // shortest simulated day, other than 0 for real time
	minPeriod = time.Millisecond // shortest telemetry period, other than 0 for none
)

// top checks the top level's values, up to the devices list being there; the groups in it
// are checked by groups. It reports false when the file is not a mapping at all.
func (c *checker) top(root *value[scenarioFile]) bool {
	if !root.given() {
		c.addf(root.line(), "expected %s, got null", scenarioFile{}.expected())
		return false
	}
	if !root.ok() {
		return false // not a mapping, as the decoder said
	}
	f := &root.V
	if c.required(&f.Name.pos, &root.pos, "", "name", "") && f.Name.ok() {
		c.checkName(f.Name.line(), "name", f.Name.V, false)
	}
	if f.Broker.ok() {
		if _, err := ParseBroker(f.Broker.V); err != nil {
			c.reject(&f.Broker.pos, "broker", "%v", err)
		}
	}
	c.times(f)
	if f.Seed.big {
		c.reject(&f.Seed.pos, "seed", "%s is out of range (0..%d)", f.Seed.text(), uint64(math.MaxUint64))
	}
	c.intIn(&f.Homes, "homes", 1, MaxHomes)
	c.homesOK = f.Homes.valid()
	c.prefixOK = f.TopicPrefix.valid()
	if f.TopicPrefix.ok() {
		c.prefixOK = c.checkPrefix(f.TopicPrefix.line(), f.TopicPrefix.V, int(f.Homes.or(1)))
	}
	c.connectionsOK = c.connections(&f.Connections)
	if c.required(&f.Devices.pos, &root.pos, "", "devices", " (a list of device groups)") &&
		f.Devices.ok() && len(f.Devices.V) == 0 {
		c.addf(f.Devices.line(), "devices: must list at least one device group")
	}
	return true
}

// times checks the run's duration and the length of its simulated day.
func (c *checker) times(f *scenarioFile) {
	if v := &f.Duration; v.ok() && v.V < 0 {
		c.reject(&v.pos, "duration", "%s is out of range (>= 0; 0 runs until interrupted)", v.text())
	}
	if v := &f.Day; v.ok() && v.V != 0 && v.V < minDay {
		c.reject(&v.pos, "day", "%s is out of range (0 for real time, or >= 1s)", v.text())
	}
}

// checkPrefix checks the topic prefix template, and its expansion for the last home.
func (c *checker) checkPrefix(line int, prefix string, homes int) bool {
	if _, ok := c.checkTemplate(line, "topic_prefix", prefix, prefixPlaceholders); !ok {
		return false
	}
	s := Scenario{TopicPrefix: prefix}
	if err := checkName(s.Prefix(homes), true); err != nil {
		c.addf(line, "topic_prefix: %s expands to %v", quote(prefix), err)
		return false
	}
	return true
}
