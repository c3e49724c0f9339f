package scenario

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/fleetsim/fleetsim/sim"
)

// checker checks the decoded file structs, reporting every problem it finds, and resolves
// what building the Scenario needs: link profiles, and each group's kind and params. A
// value it rejects is marked bad, so that building leaves it out (taking the default) and
// the checks that depend on it are skipped rather than piling up on one mistake.
type checker struct {
	*decoder // which decodes each group's params once the group's kind is known
	kinds    map[string]sim.Kind
	shared   *sim.Shared // for the one device each kind builds

	// What later checks need to know of earlier ones.
	homesOK       bool // homes is absent or good
	prefixOK      bool // topic_prefix is absent or good
	connectionsOK bool // connections is absent or good
}

func newChecker(d *decoder, kinds map[string]sim.Kind) *checker {
	return &checker{decoder: d, kinds: kinds, shared: sim.NewShared()}
}

// check checks the file and builds the Scenario it describes, in three steps: each value on
// its own (top level, connections, each group); then, on the Scenario built from the values
// that passed, what involves several groups; last, each group's params, by letting its
// kind build one device with them. It returns nil if the file is not even a mapping.
func (c *checker) check(root *value[scenarioFile]) *Scenario {
	if !c.top(root) {
		return nil
	}
	f := &root.V
	groups := c.groups(f)
	if c.overspent {
		return nil
	}
	s := f.build(c.file)
	c.groupSet(s, f, groups)
	c.groupLinks(s, groups)
	c.groupMQTT5(f, groups)
	for i, g := range groups {
		if !g.bad && g.f.kindOK {
			c.buildDevice(s, &s.Groups[i], g)
		}
	}
	return s
}

// reject reports a problem with a value, as "name: message" after the value's path or
// flag, and marks the value bad.
func (c *checker) reject(p *pos, path, format string, args ...any) {
	c.addf(p.line(), "%s: %s", p.name(path), fmt.Sprintf(format, args...))
	p.bad = true
}

// required reports a field that must be given and is not: absent (at the line of the
// mapping m it belongs in) or null (at its key's line). path is the mapping's.
func (c *checker) required(v, m *pos, path, field, hint string) bool {
	switch {
	case v.given():
		return true
	case v.key != nil:
		c.addf(max(v.key.Line, 1), "%s: a value is required%s", join(path, field), hint)
	default:
		c.addf(max(deref(m.node).Line, 1), "%smissing required field %q%s", pathPrefix(path), field, hint)
	}
	return false
}

// intIn rejects an integer outside lo..hi, and reports whether the integer is good.
func (c *checker) intIn(v *value[int64], path string, lo, hi int64) bool {
	if v.big || v.ok() && (v.V < lo || v.V > hi) {
		c.reject(&v.pos, path, "%s is out of range (%d..%d)", v.text(), lo, hi)
	}
	return v.ok()
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// checkName checks a scenario or group name, reporting a problem at line if it is bad.
// fromKind says the name was not written but defaults to the group's kind.
func (c *checker) checkName(line int, path, name string, fromKind bool) bool {
	what := fmt.Sprintf("%s: %s", path, quote(name))
	if fromKind {
		what = fmt.Sprintf("%s: the name defaults to the kind, and %s", path, quote(name))
	}
	switch {
	case len(name) > MaxNameLen:
		c.addf(line, "%s is too long (%d bytes, max %d)", what, len(name), MaxNameLen)
	case !nameRe.MatchString(name):
		c.addf(line, "%s is not a valid name (lowercase letters, digits, '-' and '_', starting with a letter or digit; max %d)", what, MaxNameLen)
	default:
		return true
	}
	return false
}

func (c *checker) knownKinds() string {
	if len(c.kinds) == 0 {
		return "no kinds are registered"
	}
	return "known kinds: " + strings.Join(slices.Sorted(maps.Keys(c.kinds)), ", ")
}

func (c *checker) unknownKind(v string) string {
	msg := fmt.Sprintf("unknown kind %s (%s)", quote(v), c.knownKinds())
	if s := suggest(v, slices.Collect(maps.Keys(c.kinds))); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}
