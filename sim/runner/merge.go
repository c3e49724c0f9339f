package runner

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// Report is a summary read from a named report, for Merge's messages.
type Report struct {
	Name string
	*Summary
}

// A MergeError says which report could not be merged, and why.
type MergeError struct {
	Name string
	Err  error
}

func (e *MergeError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *MergeError) Unwrap() error { return e.Err }

// Merge makes one summary of the reports of the shards of one run, as if one process had
// run the whole fleet, and judges it (its verdict and thresholds, as Run would; the
// returned error is Run's for that verdict). Counts add up; latency percentiles come from
// the merged histograms, never from averaged percentiles; loss, duplicates and reordering
// are the shards' own plus, from the streams' tallies, the tail of each stream whose
// publisher ran in another shard than its receiver, and a shared subscription's group
// whose members ran in several shards counted as one receiver. Merging one report gives
// it back. The order of the reports does not matter.
//
// The reports must all be of one scenario and, when there are several, the shards 1 to N
// of one run, each once; anything else is a *MergeError naming the report.
func Merge(reports []Report) (*Summary, error) {
	if len(reports) == 0 {
		return nil, errors.New("no reports to merge")
	}
	rs := slices.Clone(reports)
	slices.SortStableFunc(rs, func(a, b Report) int {
		return cmp.Or(cmp.Compare(a.Sharding.Shard.Index, b.Sharding.Shard.Index), cmp.Compare(a.Name, b.Name))
	})
	if err := checkMergeable(rs); err != nil {
		return nil, err
	}
	if len(rs) == 1 {
		s := *rs[0].Summary
		return &s, s.rejudge(allowedGenerator(rs))
	}
	out := &Summary{Scenario: rs[0].Scenario}
	if err := out.mergeMeasured(rs); err != nil {
		return nil, err
	}
	out.mergeRest(rs)
	out.Sharding = ShardInfo{RunID: rs[0].Sharding.RunID, StartAt: rs[0].Sharding.StartAt}
	for _, r := range rs {
		out.Sharding.StartLate = max(out.Sharding.StartLate, r.Sharding.StartLate)
	}
	return out, out.rejudge(allowedGenerator(rs))
}

// checkMergeable checks that rs (sorted by shard) are the shards of one run.
func checkMergeable(rs []Report) error {
	first := rs[0]
	for _, r := range rs[1:] {
		if r.Scenario != first.Scenario {
			return &MergeError{r.Name, fmt.Errorf("scenario %q, but %s is of %q: reports of different scenarios", r.Scenario, first.Name, first.Scenario)}
		}
	}
	if len(rs) == 1 {
		return nil
	}
	n := first.Sharding.Shard.Count
	for i, r := range rs {
		sh := r.Sharding
		switch {
		case sh.Shard.Count <= 1:
			return &MergeError{r.Name, errors.New("not a shard's report (run with --shard I/N to merge)")}
		case !r.Portable.Streams:
			return &MergeError{r.Name, errors.New("a shard's report without its streams' tallies")}
		case sh.Shard.Count != n:
			return &MergeError{r.Name, fmt.Errorf("shard %s, but %s is shard %s: shards of different splits", sh.Shard, first.Name, first.Sharding.Shard)}
		case sh.RunID != first.Sharding.RunID || !sh.StartAt.Equal(first.Sharding.StartAt):
			return &MergeError{r.Name, fmt.Errorf("run %s starting %s, but %s is of run %s starting %s: shards of different runs",
				sh.RunID, sh.StartAt.Format(time.RFC3339), first.Name, first.Sharding.RunID, first.Sharding.StartAt.Format(time.RFC3339))}
		case i > 0 && sh.Shard.Index == rs[i-1].Sharding.Shard.Index:
			return &MergeError{r.Name, fmt.Errorf("shard %s again (also %s)", sh.Shard, rs[i-1].Name)}
		}
	}
	if len(rs) != n {
		var missing []string
		have := map[int]bool{}
		for _, r := range rs {
			have[r.Sharding.Shard.Index] = true
		}
		for i := 1; i <= n; i++ {
			if !have[i] {
				missing = append(missing, fmt.Sprintf("%d/%d", i, n))
			}
		}
		return &MergeError{first.Name, fmt.Errorf("%d of %d shards given; missing shard %s", len(rs), n, strings.Join(missing, ", "))}
	}
	return nil
}

// allowedGenerator is whether the run allowed its generator to be the limit: a report
// whose generator was the limit and that still did not get that verdict says so.
func allowedGenerator(rs []Report) bool {
	for _, r := range rs {
		if r.Measured.Generator.Bottleneck && r.Verdict != GeneratorLimited {
			return true
		}
	}
	return false
}

// rejudge checks the summary's thresholds again on its figures and settles its verdict.
func (s *Summary) rejudge(allowGenerator bool) error {
	var ts []measure.Threshold
	for _, t := range s.Thresholds {
		th, err := measure.Parse(t.Threshold)
		if err != nil {
			return fmt.Errorf("threshold %q: %w", t.Threshold, err)
		}
		ts = append(ts, th)
	}
	s.CheckThresholds(ts)
	return s.judge(allowGenerator)
}

// prefixed marks a shard's lines (errors, reasons) with the shard.
func prefixed(r Report, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "shard " + r.Sharding.Shard.String() + ": " + l
	}
	return out
}
