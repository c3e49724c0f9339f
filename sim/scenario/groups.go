package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// Checks of the device groups: each on its own, then those that involve several groups or
// the scenario as a whole.

// groupCheck is what the checker knows about one group of the devices list.
type groupCheck struct {
	v     *value[groupFile]
	f     *groupFile // &v.V
	where string     // "devices[i]", for messages
	line  int        // the group's line
	bad   bool       // a problem was found in the group
}

// groups checks each group on its own, and decodes its params for its kind.
func (c *checker) groups(f *scenarioFile) []*groupCheck {
	if !f.Devices.ok() {
		return nil
	}
	list := f.Devices.V
	groups := make([]*groupCheck, len(list))
	for i := range list {
		v := &list[i]
		g := &groupCheck{v: v, f: &v.V, where: fmt.Sprintf("devices[%d]", i), line: max(v.node.Line, 1)}
		before := c.failures
		c.group(g)
		g.bad = v.faults > 0 || c.failures > before
		groups[i] = g
	}
	return groups
}

// group checks one group's values.
func (c *checker) group(g *groupCheck) {
	if !g.v.given() {
		c.addf(g.line, "%s: expected %s, got null", g.where, groupFile{}.expected())
		return
	}
	if !g.v.ok() {
		return // not a mapping, as the decoder said
	}
	f, w := g.f, g.where
	c.groupKind(g)
	c.groupName(g)
	c.intIn(&f.Count, w+".count", 1, MaxCount)
	c.intIn(&f.Homes, w+".homes", 1, MaxHomes)
	if p := &f.Period; p.ok() && (p.V < 0 || p.V > 0 && p.V < minPeriod) {
		c.reject(&p.pos, w+".period", "%s is out of range (0 for no telemetry, or >= 1ms)", p.text())
	}
	c.intIn(&f.QoS, w+".qos", 0, 2)
	if r := &f.MaxRate; r.ok() && !(r.V > 0 && r.V <= MaxRateLimit) {
		c.reject(&r.pos, w+".max_rate", "%s is out of range (> 0 and <= 1000000 publishes per second)", r.text())
	}
	c.checkLink(&f.Link, w+".link")
	c.expiry(&f.MessageExpiry, w+".message_expiry")
	// Without a known kind there is nothing to check params against; the kind's problem
	// is already reported.
	if f.kindOK {
		f.params = c.params(g)
	}
}

// groupKind checks that the group names a known kind.
func (c *checker) groupKind(g *groupCheck) {
	k := &g.f.Kind
	if !c.required(&k.pos, &g.v.pos, g.where, "kind", " ("+c.knownKinds()+")") || !k.ok() {
		return
	}
	if kind, ok := c.kinds[k.V]; ok {
		g.f.kind, g.f.kindOK = kind, true
		return
	}
	c.addf(k.line(), "%s.kind: %s", g.where, c.unknownKind(k.V))
}

// groupName checks the group's name, or the kind's name it defaults to.
func (c *checker) groupName(g *groupCheck) {
	f := g.f
	switch {
	case f.Name.given():
		if f.Name.ok() {
			c.checkName(f.Name.line(), g.where+".name", f.Name.V, false)
		}
	case f.Kind.ok() && f.Kind.V != "":
		c.checkName(g.line, g.where+".name", f.Kind.V, true)
	}
}

// groupSet runs the checks that involve several groups or the scenario as a whole, on the
// Scenario s built from the values that passed: group homes, unique names and topics, and
// the total device count.
func (c *checker) groupSet(s *Scenario, f *scenarioFile, groups []*groupCheck) {
	names, topics := map[string]int{}, map[string]int{}
	for i, g := range groups {
		before := c.failures
		built := &s.Groups[i]
		if built.Homes > s.Homes && c.homesOK {
			c.addf(g.f.Homes.line(), "%s.homes: %d is more than the scenario's %d homes", g.where, built.Homes, s.Homes)
		}
		c.uniqueName(built, i, names, groups)
		if vars, ok := c.topicTemplate(s, built, g); ok && c.failures == before && c.prefixOK && built.Kind != "" {
			c.topicExpansion(s, built, g, vars)
			if c.failures == before {
				c.uniqueTopic(s, built, i, topics, groups)
			}
		}
		if c.failures > before {
			g.bad = true
		}
	}
	c.deviceTotal(s, f, groups)
}

// uniqueName checks that no group before the i-th has its name.
func (c *checker) uniqueName(built *Group, i int, names map[string]int, groups []*groupCheck) {
	if built.Name == "" {
		return
	}
	j, dup := names[built.Name]
	if !dup {
		names[built.Name] = i
		return
	}
	g := groups[i]
	if g.f.Name.ok() {
		c.addf(g.f.Name.line(), "%s.name: duplicate name %s (already used by devices[%d] at line %d)", g.where, quote(built.Name), j, groups[j].line)
	} else {
		c.addf(g.line, "%s.name: duplicate name %s, which defaults to the kind (already used by devices[%d] at line %d); give the group a distinct name", g.where, quote(built.Name), j, groups[j].line)
	}
}

// topicLine is the line of the group's topic, or of the group when it has the default.
func (g *groupCheck) topicLine() int {
	if g.f.Topic.ok() {
		return g.f.Topic.line()
	}
	return g.line
}

// topicTemplate checks the group's topic template, and that it gives each device of the
// group, in each home, a topic of its own. It returns the placeholders the template uses.
func (c *checker) topicTemplate(s *Scenario, built *Group, g *groupCheck) (map[string]bool, bool) {
	tline, path, topic := g.topicLine(), g.where+".topic", quote(built.Topic)
	vars, ok := c.checkTemplate(tline, path, built.Topic, topicPlaceholders)
	if !ok {
		return nil, false
	}
	if built.Count > 1 && !vars["id"] && !vars["n"] {
		c.addf(tline, "%s: %s gives all %d devices of the group in a home the same topic; include {id} or {n}", path, topic, built.Count)
	}
	prefixHasHome := strings.Contains(s.TopicPrefix, "{home}")
	if !c.homesOK || s.Homes <= 1 || vars["home"] || vars["prefix"] && prefixHasHome {
		return vars, true
	}
	if !vars["prefix"] {
		c.addf(tline, "%s: %s gives the devices of all %d homes the same topics; include {prefix} or {home}", path, topic, s.Homes)
	} else if c.prefixOK {
		c.addf(tline, "%s: %s gives the devices of all %d homes the same topics, because topic_prefix %s has no {home}; add {home} to topic_prefix or to the topic",
			path, topic, s.Homes, quote(s.TopicPrefix))
	}
	return vars, true
}

// topicExpansion checks the topic of the group's last device in the last home. The
// expansion only adds what names and numbers bring in, so that one is the longest.
func (c *checker) topicExpansion(s *Scenario, built *Group, g *groupCheck, vars map[string]bool) {
	n := max(built.Count, 1)
	topic := expand(built.Topic, map[string]string{
		"prefix": s.Prefix(s.Homes),
		"home":   strconv.Itoa(s.Homes),
		"kind":   built.Kind,
		"name":   built.Name,
		"id":     built.DeviceID(n),
		"n":      strconv.Itoa(n),
	})
	if err := checkName(topic, true); err != nil {
		c.addf(g.topicLine(), "%s.topic: %s expands to %v", g.where, quote(built.Topic), err)
	}
}

// uniqueTopic checks that no group before the i-th publishes on the same topics.
func (c *checker) uniqueTopic(s *Scenario, built *Group, i int, topics map[string]int, groups []*groupCheck) {
	sig := topicSignature(s, built)
	j, dup := topics[sig]
	if !dup {
		topics[sig] = i
		return
	}
	g := groups[i]
	c.addf(g.topicLine(), "%s.topic: %s gives the same topics as the topic of devices[%d] (line %d)", g.where, quote(built.Topic), j, groups[j].line)
}

// topicSignature renders the group's topic template with everything but the home and
// device numbers filled in: two groups with the same signature publish on the same topics.
func topicSignature(s *Scenario, g *Group) string {
	return expand(g.Topic, map[string]string{
		"prefix": s.TopicPrefix,
		"kind":   g.Kind,
		"name":   g.Name,
		"id":     g.Name + "-{n}",
	})
}

// deviceTotal checks the number of devices in the whole run.
func (c *checker) deviceTotal(s *Scenario, f *scenarioFile, groups []*groupCheck) {
	var perHome int64
	for _, g := range groups {
		if !g.f.Count.valid() {
			return // the count is reported already
		}
		perHome = min(perHome+int64(g.f.Count.or(1)), 1<<40)
	}
	if !c.homesOK || len(groups) == 0 {
		return
	}
	if total := int64(s.Homes) * perHome; total > MaxDevices {
		line := f.Devices.key.Line
		if f.Homes.key != nil {
			line = f.Homes.key.Line
		}
		c.addf(line, "too many devices: %d homes × %d devices per home = %d (max %d)", s.Homes, perHome, total, MaxDevices)
	}
}

// groupLinks checks that groups have links of their own only when each device has a
// connection of its own: shared connections take theirs from connections.link. Without a
// good connections field there is nothing to say.
func (c *checker) groupLinks(s *Scenario, groups []*groupCheck) {
	if !c.connectionsOK || s.Connections.Mode == PerDevice {
		return
	}
	for _, g := range groups {
		if g.f.Link.given() {
			c.addf(g.f.Link.line(), "%s.link: a group's link shapes each device's own connection and needs connections: %s; to shape the shared connections, set the link there: connections: %s",
				g.where, PerDevice, sharedLinkExample(s.Connections))
		}
	}
}
