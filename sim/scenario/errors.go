package scenario

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a scenario file.
//
// Line is the 1-based line the problem is about. It is 0 only for problems that have no line
// to point at: a file with no YAML document in it (empty, or only comments), or a value given
// by a command-line override (see Overrides), whose message then starts with the flag.
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

// report collects the problems found in one file, each once.
type report struct {
	file     string
	problems []Problem
	seen     map[Problem]bool
	// failures counts every problem raised, repeats included, so that a step can tell
	// whether it failed by comparing the count before and after it.
	failures int
}

func newReport(file string) *report {
	return &report{file: file, seen: map[Problem]bool{}}
}

// addf records a problem at line. Identical problems are recorded once.
func (r *report) addf(line int, format string, args ...any) {
	r.failures++
	pr := Problem{File: r.file, Line: max(line, 0), Msg: fmt.Sprintf(format, args...)}
	if r.seen[pr] {
		return
	}
	r.seen[pr] = true
	r.problems = append(r.problems, pr)
}

// errors returns the problems recorded, sorted by line.
func (r *report) errors() *Errors {
	ps := slices.Clone(r.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Errors{Problems: ps}
}
