package scenario

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim"
)

// keyValue is one entry of a mapping. key is nil for an absent field.
type keyValue struct {
	key, val *yaml.Node
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// where renders a path for "in ..." phrases.
func where(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}

// pathPrefix renders a path for "path: message" phrases.
func pathPrefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// pairs returns the entries of mapping m with merge keys ("<<") expanded the way YAML
// decoders do: keys written in the mapping win over merged ones, and earlier merged
// mappings over later ones. Duplicate keys, non-scalar keys and malformed merges are
// reported, each key node once.
func (p *parser) pairs(m *yaml.Node, path string) []keyValue {
	var out []keyValue
	p.collect(m, path, map[string]bool{}, &out, map[*yaml.Node]bool{})
	return out
}

func (p *parser) collect(m *yaml.Node, path string, seen map[string]bool, out *[]keyValue, active map[*yaml.Node]bool) {
	if active[m] {
		p.addf(max(m.Line, 1), "%sa merge key (<<) includes the mapping it is in", pathPrefix(path))
		return
	}
	if !p.spend(len(m.Content)/2+1, max(m.Line, 1)) {
		return
	}
	active[m] = true
	defer delete(active, m)
	local := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		kd := deref(k)
		if kd == nil || kd.Kind != yaml.ScalarNode {
			if !p.reported[k] {
				p.reported[k] = true
				p.addf(max(k.Line, 1), "%sfield names must be plain words, got %s", pathPrefix(path), describe(kd))
			}
			continue
		}
		name := kd.Value
		if first, dup := local[name]; dup {
			if !p.reported[k] {
				p.reported[k] = true
				p.addf(max(k.Line, 1), "duplicate field %s %s (first set at line %d)", quote(name), where(path), first.Line)
			}
			continue
		}
		local[name] = k
		if seen[name] {
			continue // set by a mapping that merges this one, which wins
		}
		seen[name] = true
		*out = append(*out, keyValue{k, v})
	}
	for _, mv := range merges {
		md := deref(mv)
		switch {
		case md != nil && md.Kind == yaml.MappingNode:
			p.collect(md, path, seen, out, active)
		case md != nil && md.Kind == yaml.SequenceNode:
			for _, e := range md.Content {
				if ed := deref(e); ed != nil && ed.Kind == yaml.MappingNode {
					p.collect(ed, path, seen, out, active)
				} else {
					p.addf(max(e.Line, 1), "%sa merge key (<<) needs a mapping or a list of mappings, got %s", pathPrefix(path), describe(ed))
				}
			}
		default:
			p.addf(max(mv.Line, 1), "%sa merge key (<<) needs a mapping or a list of mappings, got %s", pathPrefix(path), describe(md))
		}
	}
}

// fields returns the entries of mapping m by name, reporting names not in known.
func (p *parser) fields(m *yaml.Node, path string, known []string) map[string]keyValue {
	f := map[string]keyValue{}
	for _, kv := range p.pairs(m, path) {
		name := deref(kv.key).Value
		if !contains(known, name) {
			p.unknown(kv.key, name, path, known)
			continue
		}
		f[name] = kv
	}
	return f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unknown reports an unknown field, suggesting the nearest known one.
func (p *parser) unknown(key *yaml.Node, name, path string, known []string) {
	if p.reported[key] {
		return
	}
	p.reported[key] = true
	msg := fmt.Sprintf("unknown field %s %s", quote(name), where(path))
	if s := suggest(name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(known) > 0 {
		msg += "; known fields: " + strings.Join(known, ", ")
	}
	p.addf(max(key.Line, 1), "%s", msg)
}

// describe renders a node for "got ..." phrases.
func describe(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.DocumentNode:
		return "a document"
	case n.Kind != yaml.ScalarNode:
		return "an unknown node"
	case n.ShortTag() == "!!null":
		return "null"
	case n.ShortTag() == "!!str":
		return quote(n.Value)
	}
	return truncate(n.Value)
}

const maxShown = 60

func truncate(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quote renders a user's string in messages: quoted, and shortened if long.
func quote(s string) string { return strconv.Quote(truncate(s)) }

// scalarText renders a scalar as written, for "X is out of range" messages.
func scalarText(n *yaml.Node) string {
	if d := deref(n); d != nil {
		return truncate(d.Value)
	}
	return ""
}

func (p *parser) str(kv keyValue, path string) (string, bool) {
	v := deref(kv.val)
	if v == nil || v.Kind != yaml.ScalarNode {
		p.addf(kv.val.Line, "%s: expected a string, got %s", path, describe(v))
		return "", false
	}
	return v.Value, true
}

// int64 decodes an integer. ok is false after recording a problem; big reports an integer
// too large for int64 (no problem recorded).
func (p *parser) int64(kv keyValue, path string) (n int64, big, ok bool) {
	v := deref(kv.val)
	if v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float" && bigIntRe.MatchString(v.Value) {
		return 0, true, false // too many digits for an integer, so YAML made it a float
	}
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		p.addf(kv.val.Line, "%s: expected an integer, got %s", path, describe(v))
		return 0, false, false
	}
	if err := v.Decode(&n); err != nil {
		return 0, true, false
	}
	return n, false, true
}

// intRange decodes an integer in [lo, hi].
func (p *parser) intRange(kv keyValue, path string, lo, hi int64) (int64, bool) {
	n, big, ok := p.int64(kv, path)
	if big || (ok && (n < lo || n > hi)) {
		p.addf(kv.val.Line, "%s: %s is out of range (%d..%d)", path, scalarText(kv.val), lo, hi)
		return 0, false
	}
	return n, ok
}

func (p *parser) uint64(kv keyValue, path string) (uint64, bool) {
	v := deref(kv.val)
	big := v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float" && bigIntRe.MatchString(v.Value)
	if !big && (v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int") {
		p.addf(kv.val.Line, "%s: expected an integer, got %s", path, describe(v))
		return 0, false
	}
	var n uint64
	if err := v.Decode(&n); big || err != nil {
		p.addf(kv.val.Line, "%s: %s is out of range (0..%d)", path, scalarText(kv.val), uint64(1<<64-1))
		return 0, false
	}
	return n, true
}

func (p *parser) float(kv keyValue, path string) (float64, bool) {
	v := deref(kv.val)
	if v == nil || v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!float") {
		p.addf(kv.val.Line, "%s: expected a number, got %s", path, describe(v))
		return 0, false
	}
	var f float64
	if err := v.Decode(&f); err != nil {
		p.addf(kv.val.Line, "%s: expected a number, got %s", path, describe(v))
		return 0, false
	}
	return f, true
}

func (p *parser) bool(kv keyValue, path string) (bool, bool) {
	v := deref(kv.val)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		p.addf(kv.val.Line, "%s: expected true or false, got %s", path, describe(v))
		return false, false
	}
	var b bool
	if err := v.Decode(&b); err != nil {
		p.addf(kv.val.Line, "%s: expected true or false, got %s", path, describe(v))
		return false, false
	}
	return b, true
}

func (p *parser) duration(kv keyValue, path string) (time.Duration, bool) {
	v := deref(kv.val)
	if v != nil && v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float":
			d, err := time.ParseDuration(v.Value)
			if err == nil {
				return d, true
			}
			hint := ""
			if strings.Contains(err.Error(), "missing unit") {
				hint = " (missing unit)"
			}
			p.addf(kv.val.Line, "%s: expected a duration like 90s, 2m or 1h30m, got %s%s", path, describe(v), hint)
			return 0, false
		}
	}
	p.addf(kv.val.Line, "%s: expected a duration like 90s, 2m or 1h30m, got %s", path, describe(v))
	return 0, false
}

var bigIntRe = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

func (p *parser) timeOfDay(kv keyValue, path string) (time.Duration, bool) {
	v := deref(kv.val)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.addf(kv.val.Line, "%s: expected a time of day \"HH:MM\", got %s", path, describe(v))
		return 0, false
	}
	d, err := sim.ParseTimeOfDay(v.Value)
	if err != nil {
		p.addf(kv.val.Line, "%s: %v", path, err)
		return 0, false
	}
	return d, true
}
