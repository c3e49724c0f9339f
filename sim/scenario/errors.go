package scenario

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a scenario file.
//
// Line is the 1-based line the problem is about. It is 0 only for problems about the file as
// a whole that have no line to point at: a file with no YAML document in it (empty, or only
// comments).
type Problem struct {
	File string
	Line int
	Msg  string
}

// String renders the problem as "file:line: message", or "file: message" when Line is 0.
func (p Problem) String() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Msg
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
}

// Errors is every problem found in a scenario file. Parse and Load report them all at once
// rather than stopping at the first.
type Errors struct {
	Problems []Problem
}

// Error renders one problem per line, sorted by line (problems on the same line keep the
// order they were found in).
func (e *Errors) Error() string {
	ps := slices.Clone(e.Problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}
