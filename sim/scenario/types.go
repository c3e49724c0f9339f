package scenario

import (
	"encoding"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// What the decoder knows about Go types: the fields of structs, and how to name a type in
// messages.

// structInfo is the set of YAML keys a struct type accepts, following the rules of the YAML
// library: the yaml tag's name, else the lowercased field name; "-" skips a field; ",inline"
// structs contribute their fields and an ",inline" map takes any other key.
type structInfo struct {
	fields    map[string][]int // field index by key
	names     []string
	inlineMap []int   // index of an inline map field, or nil
	selfDec   [][]int // indexes of inline fields that decode the whole mapping themselves
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

// structInfo returns the keys struct type t accepts, working them out once per type.
func (d *decoder) structInfo(t reflect.Type) *structInfo {
	if si, ok := d.structs[t]; ok {
		return si
	}
	si := &structInfo{fields: map[string][]int{}}
	d.structs[t] = si // before recursing, so a type that inlines itself ends
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
			sub := d.structInfo(ft)
			for _, n := range sub.names {
				if _, dup := si.fields[n]; !dup {
					si.fields[n] = append([]int{i}, sub.fields[n]...)
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
			si.fields[name] = []int{i}
			si.names = append(si.names, name)
		}
	}
	return si
}

// expecter is a type of the file that says what it looks like in its own words, for
// "expected ..., got ..." messages: "a list of device groups" rather than "a list".
type expecter interface{ expected() string }

// expectedOf describes what a value of type t looks like in YAML, for "expected ..."
// phrases.
func expectedOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if e, ok := reflect.Zero(t).Interface().(expecter); ok {
		return e.expected()
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
