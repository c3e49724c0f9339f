package scenario

import (
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim/link"
)

// linkSpec is a group's or the connections' link: a named profile (DESIGN.md §6) with any
// of its fields overridden (named profile* unless the override gives a name; see
// link.Lookup), or, without a profile, a profile of its own named "custom" by default.
type linkSpec struct {
	Use          string `yaml:"profile"`
	link.Profile `yaml:",inline"`
}

// link reads `link: nb-iot` or `link: {profile: wifi, up_bytes_per_sec: 100000}`.
func (p *parser) link(kv keyValue, path string) *link.Profile {
	var spec linkSpec
	if v := deref(kv.val); v != nil && v.Kind == yaml.ScalarNode {
		name, ok := p.str(kv, path)
		if !ok {
			return nil
		}
		spec.Use = name
	} else {
		before := len(p.problems)
		p.check(v, reflect.TypeOf(spec), path)
		if len(p.problems) > before {
			return nil
		}
		p.decode(v, reflect.ValueOf(&spec).Elem(), path, map[*yaml.Node]bool{})
		if len(p.problems) > before {
			return nil
		}
	}
	prof, err := spec.Profile, error(nil)
	if spec.Use != "" {
		prof, err = link.Lookup(spec.Use, spec.Profile)
	} else {
		if prof.Name == "" {
			prof.Name = "custom"
		}
		err = prof.Validate()
	}
	if err != nil {
		p.addf(kv.val.Line, "%s: %v", path, err)
		return nil
	}
	return &prof
}
