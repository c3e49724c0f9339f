package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/runner"
)

// shardFlags are `fleetsim run`'s flags for running one shard of a fleet in many
// processes (README, "Shards").
type shardFlags struct {
	shard, startAt string
}

// shardConfig reads the shard and the start time from the flags, else the environment:
// FLEETSIM_SHARD=I/N, or Kubernetes' JOB_COMPLETION_INDEX=k (0-based) with
// FLEETSIM_SHARDS=N (shard k+1 of N), and FLEETSIM_START_AT. A flag wins over the
// environment. A bad value is a usage error that says where it came from.
func shardConfig(f shardFlags, getenv func(string) string) (runner.Shard, time.Time, error) {
	sh, err := shardFrom(f.shard, getenv)
	if err != nil {
		return runner.Shard{}, time.Time{}, err
	}
	at, err := startAtFrom(f.startAt, getenv)
	return sh, at, err
}

func shardFrom(flag string, getenv func(string) string) (runner.Shard, error) {
	if flag != "" {
		sh, err := runner.ParseShard(flag)
		if err != nil {
			return sh, usagef("run: --shard: %v", err)
		}
		return sh, nil
	}
	if v := getenv("FLEETSIM_SHARD"); v != "" {
		sh, err := runner.ParseShard(v)
		if err != nil {
			return sh, usagef("run: FLEETSIM_SHARD (environment): %v", err)
		}
		return sh, nil
	}
	n, k := getenv("FLEETSIM_SHARDS"), getenv("JOB_COMPLETION_INDEX")
	if n == "" {
		return runner.Shard{}, nil // JOB_COMPLETION_INDEX alone: an Indexed Job that is not sharding fleetsim
	}
	where := fmt.Sprintf("FLEETSIM_SHARDS=%s with JOB_COMPLETION_INDEX=%s (environment)", n, k)
	if k == "" {
		return runner.Shard{}, usagef("run: FLEETSIM_SHARDS=%s (environment) needs JOB_COMPLETION_INDEX (0-based), or set FLEETSIM_SHARD=I/N", n)
	}
	count, err1 := strconv.Atoi(strings.TrimSpace(n))
	index, err2 := strconv.Atoi(strings.TrimSpace(k))
	if err1 != nil || err2 != nil {
		return runner.Shard{}, usagef("run: %s: want whole numbers", where)
	}
	sh, err := runner.ParseShard(fmt.Sprintf("%d/%d", index+1, count))
	if err != nil {
		return sh, usagef("run: %s: %v (JOB_COMPLETION_INDEX counts from 0)", where, err)
	}
	return sh, nil
}

func startAtFrom(flag string, getenv func(string) string) (time.Time, error) {
	v, where := flag, "--start-at"
	if v == "" {
		v, where = getenv("FLEETSIM_START_AT"), "FLEETSIM_START_AT (environment)"
	}
	if v == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v))
	if err != nil {
		return at, usagef("run: %s: %q is not an RFC 3339 time such as 2026-05-01T12:00:00Z", where, v)
	}
	if late := time.Since(at); late > runner.StartSlack {
		return at, usagef("run: %s: %s passed %v ago; the shards would not start together (give a time a little ahead, such as $(date -u -d '+1 min' +%%FT%%TZ))",
			where, v, late.Round(time.Second))
	}
	return at, nil
}

// clockSkew reads FLEETSIM_TEST_CLOCK_SKEW, a test hook: a duration this process's clock
// is taken to be ahead (negative: behind) where it stamps and reads measured messages and
// measures its offset to shard 1, as a machine whose clock is wrong would.
func clockSkew(getenv func(string) string) (time.Duration, error) {
	v := getenv("FLEETSIM_TEST_CLOCK_SKEW")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("run: FLEETSIM_TEST_CLOCK_SKEW (environment): %q is not a duration such as 250ms", v)
	}
	return d, nil
}
