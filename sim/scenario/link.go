package scenario

import (
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim/link"
)

// linkFile is a group's or the connections' link, written as a profile's name
// (`link: nb-iot`) or as a mapping: a named profile (DESIGN.md §6) with any of its fields
// overridden (`{profile: wifi, up_bytes_per_sec: 100000}`; named profile* unless the
// override gives a name, see link.Lookup), or, without a profile, a profile of its own,
// named "custom" unless it gives a name.
type linkFile struct {
	Use          string `yaml:"profile"`
	link.Profile `yaml:",inline"`

	resolved *link.Profile // set by the checker once the profile is known to be good
}

// decodeNode decodes either form of a link.
func (l *linkFile) decodeNode(d *decoder, n *yaml.Node, path string) bool {
	if n.Kind == yaml.ScalarNode {
		l.Use = n.Value
		return true
	}
	return d.decodeStruct(n, reflect.ValueOf(l).Elem(), path)
}

// profile resolves the link into the profile it describes.
func (l *linkFile) profile() (link.Profile, error) {
	if l.Use != "" {
		return link.Lookup(l.Use, l.Profile)
	}
	p := l.Profile
	if p.Name == "" {
		p.Name = "custom"
	}
	return p, p.Validate()
}

// checkLink resolves a link, or reports why it cannot be. A link with a problem already
// reported (an unknown field, say) is left alone.
func (c *checker) checkLink(v *value[linkFile], path string) {
	if !v.ok() || v.faults > 0 {
		return
	}
	p, err := v.V.profile()
	if err != nil {
		c.reject(&v.pos, path, "%v", err)
		return
	}
	v.V.resolved = &p
}
