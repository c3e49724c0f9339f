package scenario

import (
	"math"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decoding scalars into values of Go's basic kinds, strictly: YAML's tag must match the
// kind (an integer for an int, true or false for a bool), so that `count: 1.5` and
// `retained: yes` are errors rather than guesses.

// scalar decodes a scalar node into a value of a basic kind.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) bool {
	t := v.Type()
	if n.Kind != yaml.ScalarNode {
		d.badValue(n, "%s: expected %s, got %s", path, expectedOf(t), describe(n))
		return false
	}
	tag := n.ShortTag()
	var ok, handled bool
	switch {
	case t == durationType:
		return d.duration(n, v, path)
	case v.Kind() == reflect.String:
		if tag == "!!binary" {
			return d.delegate(n, v, path)
		}
		v.SetString(n.Value)
		return true
	case isIntKind(v.Kind()):
		ok, handled = d.integer(n, v, path)
	case isUintKind(v.Kind()):
		ok, handled = d.unsigned(n, v, path)
	case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
		ok, handled = d.float(n, v, path)
	case v.Kind() == reflect.Bool:
		var b bool
		if tag == "!!bool" && n.Decode(&b) == nil {
			v.SetBool(b)
			return true
		}
	default:
		return d.delegate(n, v, path)
	}
	if handled {
		return ok
	}
	d.badValue(n, "%s: expected %s, got %s", path, expectedOf(t), describe(n))
	return false
}

// duration decodes a duration written with its unit: 90s, 2m, 1h30m.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) bool {
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float":
		dur, err := time.ParseDuration(n.Value)
		if err == nil {
			v.SetInt(int64(dur))
			return true
		}
		if strings.Contains(err.Error(), "missing unit") {
			d.badValue(n, "%s: expected %s, got %s (missing unit)", path, expectedOf(v.Type()), describe(n))
			return false
		}
	}
	d.badValue(n, "%s: expected %s, got %s", path, expectedOf(v.Type()), describe(n))
	return false
}

// isInteger reports whether n is written as an integer, including one too large for YAML
// to read as one (which it then reads as a float).
func isInteger(n *yaml.Node) bool {
	tag := n.ShortTag()
	return n.Kind == yaml.ScalarNode && (tag == "!!int" || (tag == "!!float" && bigIntRe.MatchString(n.Value)))
}

func isIntKind(k reflect.Kind) bool {
	return k == reflect.Int || k == reflect.Int8 || k == reflect.Int16 || k == reflect.Int32 || k == reflect.Int64
}

func isUintKind(k reflect.Kind) bool {
	return k == reflect.Uint || k == reflect.Uint8 || k == reflect.Uint16 || k == reflect.Uint32 || k == reflect.Uint64 || k == reflect.Uintptr
}

// overflows reports whether n is an integer that does not fit v's integer type.
func overflows(n *yaml.Node, v reflect.Value) bool {
	if n == nil || !isInteger(n) {
		return false
	}
	switch {
	case isIntKind(v.Kind()):
		var x int64
		return n.Decode(&x) != nil || v.OverflowInt(x)
	case isUintKind(v.Kind()):
		var x uint64
		return n.Decode(&x) != nil || v.OverflowUint(x)
	}
	return false
}

// integer decodes an integer into a signed integer value. handled is false when n is not
// an integer, for the caller to say what was expected.
func (d *decoder) integer(n *yaml.Node, v reflect.Value, path string) (ok, handled bool) {
	if !isInteger(n) {
		return false, false
	}
	var x int64
	if n.Decode(&x) != nil || v.OverflowInt(x) {
		bits := uint(v.Type().Bits())
		lo, hi := int64(math.MinInt64)>>(64-bits), int64(math.MaxInt64)>>(64-bits)
		d.badValue(n, "%s: %s is out of range (%d..%d)", path, truncate(n.Value), lo, hi)
		return false, true
	}
	v.SetInt(x)
	return true, true
}

// unsigned decodes an integer into an unsigned integer value, as integer does.
func (d *decoder) unsigned(n *yaml.Node, v reflect.Value, path string) (ok, handled bool) {
	if !isInteger(n) {
		return false, false
	}
	var x uint64
	if n.Decode(&x) != nil || v.OverflowUint(x) {
		d.badValue(n, "%s: %s is out of range (0..%d)", path, truncate(n.Value), uint64(math.MaxUint64)>>(64-v.Type().Bits()))
		return false, true
	}
	v.SetUint(x)
	return true, true
}

// float decodes an integer or a float into a float value, as integer does.
func (d *decoder) float(n *yaml.Node, v reflect.Value, path string) (ok, handled bool) {
	if tag := n.ShortTag(); tag != "!!int" && tag != "!!float" {
		return false, false
	}
	var f float64
	if n.Decode(&f) != nil || v.OverflowFloat(f) {
		d.badValue(n, "%s: %s is out of range for a %s", path, truncate(n.Value), v.Type().Kind())
		return false, true
	}
	v.SetFloat(f)
	return true, true
}
