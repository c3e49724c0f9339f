package scenario

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder. Every value of a scenario file goes through it: the file's own fields, into
// the file structs of file.go, and each group's params, into the type the group's kind
// makes. It follows the YAML library's rules for Go values (yaml tags, inline fields, merge
// keys, maps merged into existing maps, lists replaced) but decodes in one linear pass (the
// library's own decoder checks for duplicate keys in quadratic time), and it is strict:
//
//   - an unknown field is an error, reported with the nearest known one;
//   - an integer field takes an integer, not 1.5 or "1"; a bool takes true or false, not
//     "yes"; a duration needs its unit;
//   - every problem names the value's path and line, and decoding goes on, so that one
//     pass reports them all.
//
// A null value keeps the default. Types with their own UnmarshalYAML or UnmarshalText, and
// interface values, are handed to the YAML library. The file's own types take part through
// two small interfaces, fieldDecoder and nodeDecoder.

// fieldDecoder is implemented by value[T], which remembers where it was written. The
// decoder hands it each field's key and value node as written (aliases and nulls
// included), and each list item's node with a nil key.
type fieldDecoder interface {
	decodeField(d *decoder, key, n *yaml.Node, path string)
}

// nodeDecoder is implemented by the file's types that decode themselves: a value written
// in more than one form (`link: wifi` or `link: {profile: wifi, ...}`), or parsed from its
// text (a threshold). decodeNode is given a node that is neither an alias nor null, and
// reports whether it could decode it (having reported why not).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string) bool
}

// decoder decodes the nodes of one file and records its problems.
type decoder struct {
	*report

	reported  map[*yaml.Node]bool // key nodes reported (unknown, duplicate, ...)
	badValues map[*yaml.Node]bool // value nodes reported
	active    map[*yaml.Node]bool // aliases being decoded, to catch an anchor inside itself
	structs   map[reflect.Type]*structInfo

	// budget bounds the work done by following aliases and merges, which could otherwise
	// make a small file expensive to load. It starts as a multiple of the file's node count.
	budget    int
	overspent bool
	sizes     map[*yaml.Node]int
}

func newDecoder(file string) *decoder {
	return &decoder{
		report:    newReport(file),
		reported:  map[*yaml.Node]bool{},
		badValues: map[*yaml.Node]bool{},
		active:    map[*yaml.Node]bool{},
		structs:   map[reflect.Type]*structInfo{},
		sizes:     map[*yaml.Node]int{},
	}
}

// badValue records a problem with value node n, once per node: a value shared through an
// anchor by several groups is reported once (but counts as a failure each time).
func (d *decoder) badValue(n *yaml.Node, format string, args ...any) {
	if d.badValues[n] {
		d.failures++
		return
	}
	d.badValues[n] = true
	d.addf(max(n.Line, 1), format, args...)
}

// spend charges n units of work against the budget and reports whether it was affordable.
func (d *decoder) spend(n, line int) bool {
	if d.overspent {
		return false
	}
	d.budget -= n
	if d.budget < 0 {
		d.overspent = true
		d.addf(line, "anchors, aliases and merge keys expand this file too much; write the values out")
		return false
	}
	return true
}

// size is the number of nodes n stands for once aliases are expanded, saturating.
func (d *decoder) size(n *yaml.Node) int {
	const limit = 1 << 40
	if n == nil {
		return 0
	}
	if s, ok := d.sizes[n]; ok {
		return max(s, 0) // an anchor inside itself counts once; decode reports it
	}
	d.sizes[n] = -1
	s := 1
	if n.Kind == yaml.AliasNode {
		s = min(s+d.size(n.Alias), limit)
	} else {
		for _, c := range n.Content {
			s = min(s+d.size(c), limit)
		}
	}
	d.sizes[n] = s
	return s
}

// decode decodes node n into v, which must be settable, and reports whether n could be
// decoded. A mapping counts as decoded even when some of its fields could not be: those
// are reported on their own.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) bool {
	switch {
	case n == nil:
		return true
	case n.Kind == yaml.AliasNode:
		return d.alias(n, v, path)
	case isNull(n):
		return true // keep the default
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.decode(n, v.Elem(), path)
	}
	if v.CanAddr() {
		if h, ok := v.Addr().Interface().(nodeDecoder); ok {
			return h.decodeNode(d, n, path)
		}
	}
	t := v.Type()
	if v.Kind() == reflect.Interface || decodesItself(t) ||
		(n.Kind == yaml.ScalarNode && reflect.PointerTo(t).Implements(textUnmarshalerType)) {
		return d.delegate(n, v, path)
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Map:
		return d.decodeMap(n, v, path)
	case reflect.Slice:
		return d.decodeSlice(n, v, path)
	case reflect.Array:
		return d.decodeArray(n, v, path)
	}
	return d.scalar(n, v, path)
}

// alias decodes the node alias n names.
func (d *decoder) alias(n *yaml.Node, v reflect.Value, path string) bool {
	if d.active[n] || n.Alias == nil {
		d.badValue(n, "%s: anchor %q contains itself", path, n.Value)
		return false
	}
	d.active[n] = true
	defer delete(d.active, n)
	return d.decode(n.Alias, v, path)
}

// field decodes the value of one field (key is its key) or list item (key is nil) into v.
func (d *decoder) field(key, n *yaml.Node, v reflect.Value, path string) {
	if f, ok := v.Addr().Interface().(fieldDecoder); ok {
		f.decodeField(d, key, n, path)
		return
	}
	d.decode(n, v, path)
}

// decodeStruct decodes a mapping into struct v, reporting the keys it has no field for.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.badValue(n, "%sexpected %s, got %s", pathPrefix(path), expectedOf(v.Type()), describe(n))
		return false
	}
	si := d.structInfo(v.Type())
	for _, idx := range si.selfDec {
		d.delegate(n, fieldByIndex(v, idx), path)
	}
	for _, kv := range d.pairs(n, path) {
		name := deref(kv.key).Value
		if idx, ok := si.fields[name]; ok {
			d.field(kv.key, kv.val, fieldByIndex(v, idx), join(path, name))
		} else if si.inlineMap != nil {
			m := fieldByIndex(v, si.inlineMap)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			d.mapEntry(m, kv, path)
		} else if si.selfDec == nil {
			d.unknown(kv.key, name, path, si.names)
		}
	}
	return true
}

// decodeMap decodes a mapping into map v, adding to what it holds.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.badValue(n, "%sexpected %s, got %s", pathPrefix(path), expectedOf(v.Type()), describe(n))
		return false
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, kv := range d.pairs(n, path) {
		d.mapEntry(v, kv, path)
	}
	return true
}

// mapEntry decodes one entry of a mapping into map m; an entry that fails is left out.
func (d *decoder) mapEntry(m reflect.Value, kv keyValue, path string) {
	t := m.Type()
	before := d.failures
	k := reflect.New(t.Key()).Elem()
	d.decode(deref(kv.key), k, path)
	e := reflect.New(t.Elem()).Elem()
	d.decode(kv.val, e, path+"."+deref(kv.key).Value)
	if d.failures == before {
		m.SetMapIndex(k, e)
	}
}

// decodeSlice decodes a list into slice v, replacing what it holds.
func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.SequenceNode {
		d.badValue(n, "%sexpected %s, got %s", pathPrefix(path), expectedOf(v.Type()), describe(n))
		return false
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.field(nil, c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
	}
	v.Set(s)
	return true
}

// decodeArray decodes a list of exactly the array's length into array v.
func (d *decoder) decodeArray(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
		got := describe(n)
		if n.Kind == yaml.SequenceNode {
			got = fmt.Sprintf("a list of %d", len(n.Content))
		}
		d.badValue(n, "%s: expected a list of %d, got %s", path, v.Len(), got)
		return false
	}
	for i, c := range n.Content {
		v.Index(i).SetZero()
		d.field(nil, c, v.Index(i), path+"["+strconv.Itoa(i)+"]")
	}
	return true
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

var errLineRe = regexp.MustCompile(`^line (\d+): (.*)$`)

// delegate decodes n into v with the YAML library, for values that decode themselves.
func (d *decoder) delegate(n *yaml.Node, v reflect.Value, path string) bool {
	if !v.CanAddr() {
		tmp := reflect.New(v.Type())
		ok := d.delegate(n, tmp.Elem(), path)
		v.Set(tmp.Elem())
		return ok
	}
	var err error
	if perr := safely(func() { err = n.Decode(v.Addr().Interface()) }); perr != nil {
		err = perr
	}
	if err == nil {
		return true
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
		d.addf(max(line, 1), "%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
	}
	return false
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
