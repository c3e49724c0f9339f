package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/runner"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestShardFromFlagsAndEnvironment: the flag wins over FLEETSIM_SHARD, which wins over
// Kubernetes' JOB_COMPLETION_INDEX (0-based) with FLEETSIM_SHARDS; a bad value is a usage
// error that says where it came from.
func TestShardFromFlagsAndEnvironment(t *testing.T) {
	for _, c := range []struct {
		flag string
		env  []string
		want runner.Shard
	}{
		{"", nil, runner.Shard{}},
		{"2/3", []string{"FLEETSIM_SHARD", "1/3"}, runner.Shard{Index: 2, Count: 3}},
		{"", []string{"FLEETSIM_SHARD", "1/3", "JOB_COMPLETION_INDEX", "2", "FLEETSIM_SHARDS", "3"}, runner.Shard{Index: 1, Count: 3}},
		{"", []string{"JOB_COMPLETION_INDEX", "0", "FLEETSIM_SHARDS", "4"}, runner.Shard{Index: 1, Count: 4}},
		{"", []string{"JOB_COMPLETION_INDEX", "3", "FLEETSIM_SHARDS", "4"}, runner.Shard{Index: 4, Count: 4}},
		{"", []string{"JOB_COMPLETION_INDEX", "3"}, runner.Shard{}}, // an Indexed Job that does not shard fleetsim
	} {
		got, err := shardFrom(c.flag, envOf(c.env...))
		if err != nil || got != c.want {
			t.Errorf("--shard %q, env %v: %v, %v; want %v", c.flag, c.env, got, err, c.want)
		}
	}
	for _, c := range []struct {
		flag string
		env  []string
		want string
	}{
		{"3/2", nil, "--shard: shard 3/2"},
		{"x", nil, "--shard: \"x\" is not I/N"},
		{"", []string{"FLEETSIM_SHARD", "0/2"}, "FLEETSIM_SHARD (environment): shard 0/2"},
		{"", []string{"JOB_COMPLETION_INDEX", "4", "FLEETSIM_SHARDS", "4"}, "FLEETSIM_SHARDS=4 with JOB_COMPLETION_INDEX=4 (environment): shard 5/4"},
		{"", []string{"JOB_COMPLETION_INDEX", "x", "FLEETSIM_SHARDS", "4"}, "want whole numbers"},
		{"", []string{"FLEETSIM_SHARDS", "4"}, "needs JOB_COMPLETION_INDEX"},
	} {
		_, err := shardFrom(c.flag, envOf(c.env...))
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--shard %q, env %v: %v; want a usage error saying %q", c.flag, c.env, err, c.want)
		}
	}
}

func TestStartAtFromFlagsAndEnvironment(t *testing.T) {
	soon := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	later := soon.Add(time.Hour)
	if at, err := startAtFrom(soon.Format(time.RFC3339), envOf("FLEETSIM_START_AT", later.Format(time.RFC3339))); err != nil || !at.Equal(soon) {
		t.Errorf("the flag: %v, %v; want %v", at, err, soon)
	}
	if at, err := startAtFrom("", envOf("FLEETSIM_START_AT", later.Format(time.RFC3339))); err != nil || !at.Equal(later) {
		t.Errorf("the environment: %v, %v; want %v", at, err, later)
	}
	if at, err := startAtFrom("", envOf()); err != nil || !at.IsZero() {
		t.Errorf("neither: %v, %v; want no start time", at, err)
	}
	for flag, want := range map[string]string{
		"tomorrow": `--start-at: "tomorrow" is not an RFC 3339 time`,
		time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano): "passed 1h0m0s ago",
	} {
		var u usageError
		if _, err := startAtFrom(flag, envOf()); !errors.As(err, &u) || !strings.Contains(err.Error(), want) {
			t.Errorf("--start-at %s: %v; want a usage error saying %q", flag, err, want)
		}
	}
	var u usageError
	if _, err := startAtFrom("", envOf("FLEETSIM_START_AT", "soon")); !errors.As(err, &u) || !strings.Contains(err.Error(), "FLEETSIM_START_AT (environment)") {
		t.Errorf("a bad FLEETSIM_START_AT: %v", err)
	}
}
