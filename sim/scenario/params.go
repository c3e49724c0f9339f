package scenario

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim"
)

// A group's params: decoded, once the group's kind is known, into a fresh value of the
// kind's params type, then checked by letting the kind build one device with them.

// params returns a fresh params value of the group's kind with the group's params block
// decoded into it. Problems are recorded; the kind's Build is not run here.
func (c *checker) params(g *groupCheck) any {
	kind, name := g.f.kind, g.f.Kind.V
	var params any
	if err := safely(func() { params = kind.NewParams() }); err != nil {
		c.addf(g.line, "%s: kind %q cannot make its params: %v", g.where, name, err)
		return nil
	}
	rv := reflect.ValueOf(params)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		c.addf(g.line, "%s: kind %q made params of type %T, not a pointer", g.where, name, params)
		return nil
	}
	node := g.f.Params.node
	if isNull(node) {
		return params // the kind's defaults
	}
	path, line := g.where+".params", g.f.Params.key.Line
	if !c.spend(c.size(node), line) {
		return params
	}
	if err := safely(func() { c.decode(node, rv.Elem(), path) }); err != nil {
		c.addf(line, "%s: cannot decode: %v", path, err)
	}
	return params
}

// buildDevice lets the group's kind check the decoded params by building one device, the
// first of the first home. A problem with one field of the params points at that field.
func (c *checker) buildDevice(s *Scenario, built *Group, g *groupCheck) {
	err := newDevice(g.f.kind, s.DeviceConfig(built, 1, 1), built, c.shared)
	if err == nil {
		return
	}
	var pe *sim.ParamError
	if !errors.As(err, &pe) {
		c.addf(built.Line, "%s: %v", g.where, err)
		return
	}
	inner := "invalid value"
	if pe.Err != nil {
		inner = pe.Err.Error()
	}
	path := g.where + ".params"
	if pe.Field != "" {
		path += "." + pe.Field
	}
	c.addf(g.paramLine(pe.Field), "%s: %s", path, inner)
}

// newDevice builds a device of kind k, turning a panic or a missing device into an error.
func newDevice(k sim.Kind, cfg sim.DeviceConfig, g *Group, shared *sim.Shared) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kind %q panicked while building a device: %v", g.Kind, r)
		}
	}()
	cfg.Shared = shared
	dev, err := k.Build(cfg, g.Params)
	if err == nil && dev == nil {
		err = fmt.Errorf("kind %q built no device", g.Kind)
	}
	return err
}

// paramLine finds the line of params.<field> in the group's params block, where field is a
// key path as in a *sim.ParamError ("leave", "schedule.leave", "setpoints[1]"; indexes
// from 0). It falls back to the deepest part found, then to the params line, then to the
// group line.
func (g *groupCheck) paramLine(field string) int {
	params := &g.f.Params
	if params.key == nil {
		return g.line
	}
	line := max(params.key.Line, 1)
	n := deref(params.node)
	for _, seg := range splitFieldPath(field) {
		if n == nil {
			break
		}
		if seg.index >= 0 {
			if n.Kind != yaml.SequenceNode || seg.index >= len(n.Content) {
				break
			}
			line = max(n.Content[seg.index].Line, 1)
			n = deref(n.Content[seg.index])
			continue
		}
		k, v := lookup(n, seg.name, 0)
		if k == nil {
			break
		}
		line = max(k.Line, 1)
		n = deref(v)
	}
	return line
}

type fieldSeg struct {
	name  string
	index int // >= 0 for an index segment
}

func splitFieldPath(field string) []fieldSeg {
	var segs []fieldSeg
	for part := range strings.SplitSeq(field, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			segs = append(segs, fieldSeg{name: name, index: -1})
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 0 {
				return segs
			}
			segs = append(segs, fieldSeg{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return segs
}

// lookup finds key name in mapping m, looking into merged mappings too.
func lookup(m *yaml.Node, name string, depth int) (key, val *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode || depth > 8 {
		return nil, nil
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if isMerge(k) {
			merges = append(merges, m.Content[i+1])
			continue
		}
		if kd := deref(k); kd != nil && kd.Kind == yaml.ScalarNode && kd.Value == name {
			return k, m.Content[i+1]
		}
	}
	for _, mv := range merges {
		md := deref(mv)
		if md == nil {
			continue
		}
		list := []*yaml.Node{md}
		if md.Kind == yaml.SequenceNode {
			list = md.Content
		}
		for _, e := range list {
			if k, v := lookup(deref(e), name, depth+1); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}
