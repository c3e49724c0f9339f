package scenario

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkKey identifies one visit of the params checker: a node checked against a type.
// Each pair is visited once, which keeps checking linear even when anchors share nodes.
type checkKey struct {
	n *yaml.Node
	t reflect.Type
}

// structInfo is the set of YAML keys a struct type accepts, following the rules of the YAML
// library: the yaml tag's name, else the lowercased field name; "-" skips a field; ",inline"
// structs contribute their fields and an ",inline" map takes any other key.
type structInfo struct {
	fields    map[string]fieldRef
	names     []string
	inlineMap []int   // index of an inline map field, or nil
	selfDec   [][]int // indexes of inline fields that decode the whole mapping themselves
}

type fieldRef struct {
	typ   reflect.Type
	index []int
}

var (
	nodeType            = reflect.TypeFor[yaml.Node]()
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodesItself reports whether values of t are decoded by their own UnmarshalYAML (either
// of the YAML library's two signatures), so their keys are theirs to check.
func decodesItself(t reflect.Type) bool {
	if t == nodeType {
		return true
	}
	_, ok := reflect.PointerTo(t).MethodByName("UnmarshalYAML")
	return ok
}

func (p *parser) structInfo(t reflect.Type) *structInfo {
	if si, ok := p.structs[t]; ok {
		return si
	}
	si := &structInfo{fields: map[string]fieldRef{}}
	p.structs[t] = si // before recursing, so a type that inlines itself ends
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag)
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Map {
				si.inlineMap = []int{i}
				continue
			}
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct {
				continue
			}
			if decodesItself(ft) {
				si.selfDec = append(si.selfDec, []int{i})
				continue
			}
			sub := p.structInfo(ft)
			for _, n := range sub.names {
				if _, dup := si.fields[n]; !dup {
					ref := sub.fields[n]
					si.fields[n] = fieldRef{ref.typ, append([]int{i}, ref.index...)}
					si.names = append(si.names, n)
				}
			}
			if sub.inlineMap != nil && si.inlineMap == nil {
				si.inlineMap = append([]int{i}, sub.inlineMap...)
			}
			for _, idx := range sub.selfDec {
				si.selfDec = append(si.selfDec, append([]int{i}, idx...))
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := si.fields[name]; !dup {
			si.fields[name] = fieldRef{f.Type, []int{i}}
			si.names = append(si.names, name)
		}
	}
	return si
}

// inlineMapType is the type of the struct's inline map field, or nil.
func (si *structInfo) inlineMapType(t reflect.Type) reflect.Type {
	if si.inlineMap == nil {
		return nil
	}
	for _, i := range si.inlineMap {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		t = t.Field(i).Type
	}
	return t
}

// expectedOf describes what a value of type t looks like in YAML, for "expected ..."
// phrases.
func expectedOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return "a duration like 90s, 2m or 1h30m"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// check walks params node n against type t and reports unknown keys (and, through pairs,
// duplicate keys and bad merges). Each (node, type) pair is checked once, so keys in a
// mapping shared through an anchor are reported once. Values are checked by decode.
func (p *parser) check(n *yaml.Node, t reflect.Type, path string) {
	n = deref(n)
	if n == nil || isNull(n) {
		return
	}
	for {
		if decodesItself(t) {
			return
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode {
		return
	}
	key := checkKey{n, t}
	if p.checked[key] {
		return
	}
	p.checked[key] = true

	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		var si *structInfo
		var inline reflect.Type
		if t.Kind() == reflect.Struct {
			si = p.structInfo(t)
			inline = si.inlineMapType(t)
		}
		for _, kv := range p.pairs(n, path) {
			name := deref(kv.key).Value
			sub := path + "." + name
			switch {
			case si == nil:
				p.check(kv.val, t.Elem(), sub)
			case si.fields[name].typ != nil:
				p.check(kv.val, si.fields[name].typ, sub)
			case inline != nil:
				p.check(kv.val, inline.Elem(), sub)
			case si.selfDec == nil:
				p.unknown(kv.key, name, path, si.names)
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			p.check(c, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	}
}

// size is the number of nodes n stands for once aliases are expanded, saturating.
func (p *parser) size(n *yaml.Node) int {
	const limit = 1 << 40
	if n == nil {
		return 0
	}
	if s, ok := p.sizes[n]; ok {
		return max(s, 0) // an anchor inside itself counts once; decode reports it

	}
	p.sizes[n] = -1
	s := 1
	if n.Kind == yaml.AliasNode {
		s = min(s+p.size(n.Alias), limit)
	} else {
		for _, c := range n.Content {
			s = min(s+p.size(c), limit)
		}
	}
	p.sizes[n] = s
	return s
}

// params returns a fresh params value of the group's kind with the group's params block
// decoded into it. Problems are recorded; the kind's Build is not run here.
func (p *parser) params(gs *groupState) any {
	line := gs.g.Line
	if gs.paramsKey != nil {
		line = gs.paramsKey.Line
	}
	var params any
	if err := safely(func() { params = gs.kind.NewParams() }); err != nil {
		p.addf(gs.g.Line, "%s: kind %q cannot make its params: %v", gs.where, gs.g.Kind, err)
		return nil
	}
	rv := reflect.ValueOf(params)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		p.addf(gs.g.Line, "%s: kind %q made params of type %T, not a pointer", gs.where, gs.g.Kind, params)
		return nil
	}
	if gs.paramsNode == nil {
		return params
	}
	path := gs.where + ".params"
	p.check(gs.paramsNode, rv.Type().Elem(), path)
	if !p.spend(p.size(gs.paramsNode), line) {
		return params
	}
	if err := safely(func() { p.decode(gs.paramsNode, rv.Elem(), path, map[*yaml.Node]bool{}) }); err != nil {
		p.addf(line, "%s: cannot decode: %v", path, err)
	}
	return params
}

// paramLine finds the line of params.<field> in the group's params block, where field is a
// key path as in a *sim.ParamError ("leave", "schedule.leave", "setpoints[1]"; indexes
// from 0). It falls back to the deepest part found, then to the params line, then to the
// group line.
func (p *parser) paramLine(gs *groupState, field string) int {
	if gs.paramsKey == nil {
		return gs.g.Line
	}
	line := gs.paramsKey.Line
	n := deref(gs.paramsNode)
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

// safely runs f, turning a panic into an error.
func safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	f()
	return nil
}
