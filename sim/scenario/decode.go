package scenario

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The params decoder. It follows the YAML library's rules for Go values (yaml tags, inline
// fields, merge keys, maps merged into existing maps, lists replaced) but decodes in one
// linear pass (the library's own decoder checks for duplicate keys in quadratic time), reports
// problems with the field's path, and is stricter about scalars: an integer field takes an
// integer, not 1.5 or "1"; a bool takes true or false, not "yes". A null value keeps the
// default. Types with their own UnmarshalYAML or UnmarshalText, and interface values, are
// handed to the YAML library.

// badValue records a problem with value node n, once per node (a value shared through an
// anchor by several groups is reported once).
func (p *parser) badValue(n *yaml.Node, format string, args ...any) {
	if p.badValues[n] {
		return
	}
	p.badValues[n] = true
	p.addf(max(n.Line, 1), format, args...)
}

// decode decodes node n into v, which must be settable. active holds the aliases being
// decoded, to catch an anchor that contains itself.
func (p *parser) decode(n *yaml.Node, v reflect.Value, path string, active map[*yaml.Node]bool) {
	if n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		if active[n] || n.Alias == nil {
			p.badValue(n, "%s: anchor %q contains itself", path, n.Value)
			return
		}
		active[n] = true
		p.decode(n.Alias, v, path, active)
		delete(active, n)
		return
	}
	if isNull(n) {
		return // keep the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		p.decode(n, v.Elem(), path, active)
		return
	}
	t := v.Type()
	if v.Kind() == reflect.Interface || decodesItself(t) ||
		(n.Kind == yaml.ScalarNode && reflect.PointerTo(t).Implements(textUnmarshalerType)) {
		p.delegate(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			p.badValue(n, "%s: expected a mapping, got %s", path, describe(n))
			return
		}
		si := p.structInfo(t)
		for _, idx := range si.selfDec {
			p.delegate(n, fieldByIndex(v, idx), path)
		}
		for _, kv := range p.pairs(n, path) {
			name := deref(kv.key).Value
			if f, ok := si.fields[name]; ok {
				p.decode(kv.val, fieldByIndex(v, f.index), path+"."+name, active)
			} else if si.inlineMap != nil {
				m := fieldByIndex(v, si.inlineMap)
				if m.IsNil() {
					m.Set(reflect.MakeMap(m.Type()))
				}
				p.mapEntry(m, kv, path, active)
			}
			// Unknown keys are reported by check.
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			p.badValue(n, "%s: expected a mapping, got %s", path, describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for _, kv := range p.pairs(n, path) {
			p.mapEntry(v, kv, path, active)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			p.badValue(n, "%s: expected a list, got %s", path, describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]", active)
		}
		v.Set(s)
	case reflect.Array:
		if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
			p.badValue(n, "%s: expected a list of %d, got %s", path, v.Len(), describeLen(n))
			return
		}
		for i, c := range n.Content {
			v.Index(i).SetZero()
			p.decode(c, v.Index(i), path+"["+strconv.Itoa(i)+"]", active)
		}
	default:
		p.scalar(n, v, path)
	}
}

func describeLen(n *yaml.Node) string {
	if n.Kind == yaml.SequenceNode {
		return fmt.Sprintf("a list of %d", len(n.Content))
	}
	return describe(n)
}

// mapEntry decodes one entry of a mapping into map m.
func (p *parser) mapEntry(m reflect.Value, kv keyValue, path string, active map[*yaml.Node]bool) {
	t := m.Type()
	name := deref(kv.key).Value
	k := reflect.New(t.Key()).Elem()
	before := len(p.problems)
	p.decode(deref(kv.key), k, path, active)
	e := reflect.New(t.Elem()).Elem()
	p.decode(kv.val, e, path+"."+name, active)
	if len(p.problems) == before {
		m.SetMapIndex(k, e)
	}
}

// fieldByIndex returns the field of struct v at index, allocating nil embedded pointers.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// scalar decodes a scalar node into a value of a basic kind.
func (p *parser) scalar(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.ScalarNode {
		p.badValue(n, "%s: expected %s, got %s", path, expectedOf(t), describe(n))
		return
	}
	tag := n.ShortTag()
	if t == durationType {
		if tag == "!!str" || tag == "!!int" || tag == "!!float" {
			d, err := time.ParseDuration(n.Value)
			if err == nil {
				v.SetInt(int64(d))
				return
			}
			if strings.Contains(err.Error(), "missing unit") {
				p.badValue(n, "%s: expected %s, got %s (missing unit)", path, expectedOf(t), describe(n))
				return
			}
		}
		p.badValue(n, "%s: expected %s, got %s", path, expectedOf(t), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if tag == "!!binary" {
			p.delegate(n, v, path)
			return
		}
		v.SetString(n.Value)
		return
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" || (tag == "!!float" && bigIntRe.MatchString(n.Value)) {
			var x int64
			bits := uint(t.Bits())
			if n.Decode(&x) == nil && !v.OverflowInt(x) {
				v.SetInt(x)
				return
			}
			lo, hi := int64(math.MinInt64)>>(64-bits), int64(math.MaxInt64)>>(64-bits)
			p.badValue(n, "%s: %s is out of range (%d..%d)", path, truncate(n.Value), lo, hi)
			return
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if tag == "!!int" || (tag == "!!float" && bigIntRe.MatchString(n.Value)) {
			var x uint64
			if n.Decode(&x) == nil && !v.OverflowUint(x) {
				v.SetUint(x)
				return
			}
			p.badValue(n, "%s: %s is out of range (0..%d)", path, truncate(n.Value), uint64(math.MaxUint64)>>(64-t.Bits()))
			return
		}
	case reflect.Float32, reflect.Float64:
		if tag == "!!int" || tag == "!!float" {
			var f float64
			if n.Decode(&f) == nil && !v.OverflowFloat(f) {
				v.SetFloat(f)
				return
			}
			p.badValue(n, "%s: %s is out of range for a %s", path, truncate(n.Value), t.Kind())
			return
		}
	case reflect.Bool:
		if tag == "!!bool" {
			var b bool
			if n.Decode(&b) == nil {
				v.SetBool(b)
				return
			}
		}
	default:
		p.delegate(n, v, path)
		return
	}
	p.badValue(n, "%s: expected %s, got %s", path, expectedOf(t), describe(n))
}

var errLineRe = regexp.MustCompile(`^line (\d+): (.*)$`)

// delegate decodes n into v with the YAML library, for values that decode themselves.
func (p *parser) delegate(n *yaml.Node, v reflect.Value, path string) {
	if !v.CanAddr() {
		tmp := reflect.New(v.Type())
		p.delegate(n, tmp.Elem(), path)
		v.Set(tmp.Elem())
		return
	}
	var err error
	if perr := safely(func() { err = n.Decode(v.Addr().Interface()) }); perr != nil {
		err = perr
	}
	if err == nil {
		return
	}
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		line := n.Line
		if m := errLineRe.FindStringSubmatch(msg); m != nil {
			if l, err := strconv.Atoi(m[1]); err == nil && l > 0 {
				line = l
			}
			msg = m[2]
		}
		p.addf(max(line, 1), "%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
	}
}
