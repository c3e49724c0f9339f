package scenario

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The entries of a mapping, with merge keys expanded, and the problems with its keys.

// pairs returns the entries of mapping m with merge keys ("<<") expanded the way YAML
// decoders do: keys written in the mapping win over merged ones, and earlier merged
// mappings over later ones. Duplicate keys, non-scalar keys and malformed merges are
// reported, each key node once.
func (d *decoder) pairs(m *yaml.Node, path string) []keyValue {
	var out []keyValue
	d.collect(m, path, map[string]bool{}, &out, map[*yaml.Node]bool{})
	return out
}

// collect adds the entries of m to out, then those of the mappings it merges. seen holds
// the names already added; active the mappings being collected, to catch a merge cycle.
func (d *decoder) collect(m *yaml.Node, path string, seen map[string]bool, out *[]keyValue, active map[*yaml.Node]bool) {
	if active[m] {
		d.addf(max(m.Line, 1), "%sa merge key (<<) includes the mapping it is in", pathPrefix(path))
		return
	}
	if !d.spend(len(m.Content)/2+1, max(m.Line, 1)) {
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
			d.keyProblem(k, "%sfield names must be plain words, got %s", pathPrefix(path), describe(kd))
			continue
		}
		name := kd.Value
		if first, dup := local[name]; dup {
			d.keyProblem(k, "duplicate field %s %s (first set at line %d)", quote(name), where(path), first.Line)
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
			d.collect(md, path, seen, out, active)
		case md != nil && md.Kind == yaml.SequenceNode:
			for _, e := range md.Content {
				if ed := deref(e); ed != nil && ed.Kind == yaml.MappingNode {
					d.collect(ed, path, seen, out, active)
				} else {
					d.addf(max(e.Line, 1), "%sa merge key (<<) needs a mapping or a list of mappings, got %s", pathPrefix(path), describe(ed))
				}
			}
		default:
			d.addf(max(mv.Line, 1), "%sa merge key (<<) needs a mapping or a list of mappings, got %s", pathPrefix(path), describe(md))
		}
	}
}

// unknown reports an unknown field, suggesting the nearest known one.
func (d *decoder) unknown(key *yaml.Node, name, path string, known []string) {
	msg := fmt.Sprintf("unknown field %s %s", quote(name), where(path))
	if s := suggest(name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(known) > 0 {
		msg += "; known fields: " + strings.Join(known, ", ")
	}
	d.keyProblem(key, "%s", msg)
}

// keyProblem records a problem with a key: unknown, duplicate or not a plain word. A mapping
// shared through an anchor is decoded once per use, but each key is reported once.
func (d *decoder) keyProblem(key *yaml.Node, format string, args ...any) {
	if d.reported[key] {
		d.failures++ // the use failed all the same
		return
	}
	d.reported[key] = true
	d.addf(max(key.Line, 1), format, args...)
}
