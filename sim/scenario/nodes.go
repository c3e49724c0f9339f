package scenario

import (
	"regexp"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Small helpers on YAML nodes and on the wording of messages.

// keyValue is one entry of a mapping.
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

// isNull reports whether n is absent or null (~, null or nothing written).
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// isMerge reports whether k is a merge key, "<<".
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

// join appends a field name to a path ("" at the top level).
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// pathPrefix renders a path for "path: message" phrases.
func pathPrefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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

// truncate shortens s, if long, for messages.
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

// bigIntRe matches an integer, including one too large for YAML to read as one (which it
// then reads as a float).
var bigIntRe = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)
