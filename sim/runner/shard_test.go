package runner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"1/1": {1, 1}, "2/3": {2, 3}, " 3/3 ": {3, 3}, "4096/4096": {4096, 4096}} {
		if got, err := ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"": "not I/N", "3": "not I/N", "a/b": "not I/N", "0/3": "want I from 1 to 3",
		"4/3": "want I from 1 to 3", "1/0": "want 1 to", "1/5000": "want 1 to 4096", "-1/2": "want I from 1"} {
		if _, err := ParseShard(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseShard(%q): error %v, want one saying %q", in, err, msg)
		}
	}
}

// device is what a device is in a run: its home, id and connection (client id number).
type device struct {
	home int
	id   string
	conn int
}

// devicesOf lists the devices shard sh runs, in build's order, with the connection each
// rides (as planLayout places them).
func devicesOf(s *scenario.Scenario, sh Shard) ([]device, []int) {
	lay := planLayout(s, sh)
	var out []device
	for home := 1; home <= s.Homes; home++ {
		if !sh.Owns(home) {
			continue
		}
		for gi := range s.Groups {
			g := &s.Groups[gi]
			if !g.InHome(home) {
				continue
			}
			for n := 1; n <= g.Count; n++ {
				out = append(out, device{home, g.DeviceID(n), lay.conns[lay.devConn[len(out)]]})
			}
		}
	}
	return out, lay.conns
}

// TestShardsMakeTheSameFleet: N shards together run exactly the devices of one process,
// each once, and open exactly its connections (the same client ids), each once; a device
// rides the connection it rides in one process, except in a pool, where it rides one of
// its shard's. A group in the first home only runs in one shard.
func TestShardsMakeTheSameFleet(t *testing.T) {
	for _, mode := range []string{scenario.PerDevice, scenario.PerHome, scenario.Pool} {
		s := testScenario(mode, 5, 7, 3, pingParams{})
		s.Groups = append(s.Groups, scenario.Group{Kind: "pinger", Name: "backend", Count: 2, Homes: 1, MaxRate: 1})
		whole, wholeConns := devicesOf(s, Shard{})
		if len(whole) != s.DeviceCount() || len(wholeConns) != s.ConnectionCount() {
			t.Fatalf("%s: one process has %d devices on %d connections; want %d on %d", mode, len(whole), len(wholeConns), s.DeviceCount(), s.ConnectionCount())
		}
		for n := 1; n <= 5; n++ {
			var devs []device
			var conns []int
			for i := 1; i <= n; i++ {
				d, c := devicesOf(s, Shard{i, n})
				if len(d) == 0 {
					t.Errorf("%s: shard %d/%d has no devices", mode, i, n)
				}
				devs, conns = append(devs, d...), append(conns, c...)
				if mode == scenario.Pool {
					for _, dev := range d {
						if !slices.Contains(c, dev.conn) {
							t.Errorf("%s: shard %d/%d: device %v rides another shard's connection", mode, i, n, dev)
						}
					}
				}
			}
			key := func(d device) string {
				if mode == scenario.Pool {
					return fmt.Sprint(d.home, d.id)
				}
				return fmt.Sprint(d)
			}
			if got, want := sortedKeys(devs, key), sortedKeys(whole, key); !slices.Equal(got, want) {
				t.Errorf("%s, %d shards: devices %v\nwant %v", mode, n, got, want)
			}
			slices.Sort(conns)
			if !slices.Equal(conns, wholeConns) {
				t.Errorf("%s, %d shards: connections %v, want each of %v once", mode, n, conns, wholeConns)
			}
			backends := 0
			for _, d := range devs {
				if strings.HasPrefix(d.id, "backend-") {
					backends++
				}
			}
			if backends != 2 {
				t.Errorf("%s, %d shards: %d backends, want the 2 of home 1", mode, n, backends)
			}
		}
	}
}

func sortedKeys(ds []device, key func(device) string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = key(d)
	}
	slices.Sort(out)
	return out
}

func TestCheckShard(t *testing.T) {
	s := testScenario(scenario.Pool, 2, 3, 1, pingParams{})
	if err := CheckShard(s, Shard{3, 3}); err == nil || !strings.Contains(err.Error(), "pool of 2") {
		t.Errorf("a pool of 2 over 3 shards: %v", err)
	}
	s.Connections.Mode = scenario.PerHome
	if err := CheckShard(s, Shard{1, 4}); err == nil || !strings.Contains(err.Error(), "3 home(s), fewer than 4 shards") {
		t.Errorf("3 homes over 4 shards: %v", err)
	}
	if err := CheckShard(s, Shard{3, 3}); err != nil {
		t.Errorf("3 homes over 3 shards: %v", err)
	}
}

// TestStreamIDsAreTheShards: a shard's stream ids are its own, disjoint from the other
// shards', and it knows another's id as foreign.
func TestStreamIDsAreTheShards(t *testing.T) {
	seen := map[uint32]bool{}
	for i := uint32(1); i <= 3; i++ {
		m := newMeasurement()
		m.shard, m.shards = i, 3
		for range 5 {
			st := m.newStream(fmt.Sprint("t", i))
			if seen[st.id] || m.stream(st.id) != st || m.isForeign(st.id) {
				t.Fatalf("shard %d/3: stream %d reused or not found", i, st.id)
			}
			seen[st.id] = true
			if other := st.id%3 + 1; !m.isForeign(other) || m.stream(other) != nil {
				t.Errorf("shard %d/3: stream %d, another shard's, is not foreign", i, other)
			}
		}
	}
}

func TestRunIDIsTheRuns(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a, b := RunID("x", 1, at), RunID("x", 1, at)
	if a != b || len(a) != 6 || a == RunID("x", 1, at.Add(time.Second)) || a == RunID("x", 2, at) || a == RunID("y", 1, at) {
		t.Errorf("RunID: the shards of one run must agree and two runs differ: %s %s", a, b)
	}
}
