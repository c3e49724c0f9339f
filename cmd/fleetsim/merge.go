package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fleetsim/fleetsim/sim/runner"
)

const mergeSynopsis = `Merges the JSON reports of the shards of one run (fleetsim run --shard I/N --report FILE)
into one report, as if one process had run the whole fleet: it prints the summary, writes the
merged JSON report with --report, and exits with the run's verdict (0, 1, 98, 99 as fleetsim
run). Latency percentiles come from the shards' merged histograms; loss counts the messages a
shard published that another shard's receivers never got. Reports of different scenarios or
runs, a missing or repeated shard, or a report that does not read are errors (exit 2).`

const mergeExample = `  fleetsim merge shard-*.json
  fleetsim merge shard-1.json shard-2.json shard-3.json --report all.json`

// mergeCommand is `fleetsim merge`.
func mergeCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("merge", mergeSynopsis, mergeExample, stdout)
	report := fs.String("report", "", "write the merged report as JSON to this `file` (\"-\" for stdout)")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("merge: want the shards' report files (see fleetsim help merge)")
	}
	reports := make([]runner.Report, 0, len(files))
	for _, file := range files {
		s, err := readReportFile(file)
		if err != nil {
			return err
		}
		reports = append(reports, runner.Report{Name: file, Summary: s})
	}
	sum, err := runner.Merge(reports)
	var bad *runner.MergeError
	if errors.As(err, &bad) || sum == nil {
		return usagef("merge: %v", err)
	}
	fmt.Fprintf(stderr, "fleetsim: merged %d report(s) of %s\n", len(files), sum.Scenario)
	sum.Print(stdout)
	if *report != "" {
		if rerr := writeReport(*report, sum, stdout); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

func readReportFile(file string) (*runner.Summary, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usagef("merge: %v", err)
	}
	defer f.Close()
	s, err := runner.ReadReport(f)
	if err != nil {
		return nil, usagef("merge: %s: %v", file, err)
	}
	return s, nil
}
