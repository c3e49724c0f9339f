package scenario

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Reading the file into a YAML node tree, and saying where its syntax errors are.

// emptyFileMsg is the message of the one problem reported at line 0.
const emptyFileMsg = "the file is empty; a scenario needs at least a name and devices"

var (
	syntaxLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	anchorRe     = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// document decodes data into a node tree and returns its root, or nil after recording why
// there is none.
func (d *decoder) document(data []byte) (root *yaml.Node) {
	defer func() {
		// The YAML library is not expected to panic, but a scenario loader must not.
		if r := recover(); r != nil {
			d.addf(1, "syntax error: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.addf(0, "%s", emptyFileMsg)
		} else {
			d.syntax(err, data)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.addf(max(next.Line, 1), "a second YAML document starts here; a scenario file holds exactly one")
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0] == nil {
		d.addf(0, "%s", emptyFileMsg)
		return nil
	}
	d.budget = 16*countNodes(&doc) + 100_000
	return doc.Content[0]
}

// syntax records a YAML syntax error, finding a line for the errors that come without one.
func (d *decoder) syntax(err error, data []byte) {
	msg := err.Error()
	if m := syntaxLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserError(m[2]) {
			// The YAML library reports the parser's (not the scanner's) errors with
			// 0-based lines: the line where the enclosing collection starts, or the
			// offending token's line when that is the first.
			line++
		}
		d.addf(max(line, 1), "syntax error: %s", m[2])
		return
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 1
	if m := anchorRe.FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = lineAt(data, i)
		}
	} else if i := badByte(data); i >= 0 {
		line = lineAt(data, i)
	}
	d.addf(line, "syntax error: %s", msg)
}

// parserErrors are the messages of the YAML parser's (not its scanner's) errors.
var parserErrors = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %YAML directive",
	"found duplicate %TAG directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func parserError(msg string) bool {
	return contains(parserErrors, msg) || (strings.HasPrefix(msg, "expected ") && strings.Contains(msg, " event but got "))
}

// badByte returns the offset of the first byte YAML rejects outright (invalid UTF-8 or a
// control character other than tab and line breaks), or -1.
func badByte(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfffe || r == 0xffff {
			return i
		}
		i += size
	}
	return -1
}

func lineAt(data []byte, off int) int { return 1 + bytes.Count(data[:off], []byte("\n")) }

// countNodes counts the nodes of the tree without following aliases.
func countNodes(n *yaml.Node) int {
	c := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil {
			continue
		}
		c++
		stack = append(stack, n.Content...)
	}
	return c
}
