package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// Shard is one of Count parts of a fleet (DESIGN.md §9): Index from 1 to Count. The zero
// Shard is the whole fleet in one process.
//
// The split is by home, round robin: home h runs in shard (h-1) mod Count + 1. Every
// device keeps the id, seed, topics and schedule it has in one process (they derive from
// its home and its place in its group, never from what else runs beside it), and its
// connection keeps its client id. A group that exists only in the first homes (a backend
// sink with homes: 1) runs in the shards of those homes, once, as in one process: it is
// not duplicated as members of a shared subscription in every shard, which would make a
// different fleet (N sinks instead of one) and a different fan-out for the broker.
// Round robin, rather than blocks of homes, spreads such groups over the shards.
type Shard struct {
	Index, Count int
}

// Whole reports whether s is the whole fleet (no shards, or 1/1).
func (s Shard) Whole() bool { return s.Count <= 1 }

func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Owns reports whether home h runs in shard s.
func (s Shard) Owns(home int) bool { return s.Whole() || (home-1)%s.Count+1 == s.Index }

// MaxShards bounds Count; stream ids (32 bits) are spread over the shards.
const MaxShards = 4096

// ParseShard reads "I/N", I from 1 to N.
func ParseShard(v string) (Shard, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(v), "/")
	index, err1 := strconv.Atoi(i)
	count, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("%q is not I/N (such as 2/5)", v)
	}
	s := Shard{Index: index, Count: count}
	return s, s.valid()
}

func (s Shard) valid() error {
	if s.Count < 1 || s.Count > MaxShards {
		return fmt.Errorf("%d shards: want 1 to %d", s.Count, MaxShards)
	}
	if s.Index < 1 || s.Index > s.Count {
		return fmt.Errorf("shard %d/%d: want I from 1 to %d", s.Index, s.Count, s.Count)
	}
	return nil
}

// CheckShard says whether scenario sc can be split as s: every shard needs a home, and,
// with a pool of connections, a connection of its own.
func CheckShard(sc *scenario.Scenario, s Shard) error {
	if s.Count == 0 {
		return nil
	}
	if err := s.valid(); err != nil {
		return err
	}
	if s.Count > sc.Homes {
		return fmt.Errorf("shard %s: %s has %d home(s), fewer than %d shards (the split is by home)", s, sc.Name, sc.Homes, s.Count)
	}
	if sc.Connections.Mode == scenario.Pool && sc.ConnectionCount() < s.Count {
		return fmt.Errorf("shard %s: a pool of %d connection(s) cannot be split over %d shards", s, sc.ConnectionCount(), s.Count)
	}
	return nil
}

// layout is which connections a shard opens and which of them each of its devices rides.
// conns holds global connection indexes (0-based, as in one process: client ids and links
// follow them); devConn[k] is the position in conns of the shard's k-th device, in the
// order build makes them.
//
// With per-device and per-home connections, a connection belongs to one device or one
// home, so a shard opens exactly the connections its homes had in one process. A pool's
// connections are shared by devices of every home; shard I opens pool connections I-1,
// I-1+N, ... (all shards together open the pool once, with its client ids) and spreads its
// devices over them. So a pooled device may ride another pool connection than in one
// process; the connections, their names and their load are the same.
type layout struct {
	conns   []int
	devConn []int
}

func planLayout(s *scenario.Scenario, sh Shard) layout {
	var l layout
	pos := map[int]int{} // global connection → position in l.conns
	var own []int        // pool connections of the shard
	if s.Connections.Mode == scenario.Pool {
		for c := range s.ConnectionCount() {
			if sh.Whole() || c%sh.Count == sh.Index-1 {
				own = append(own, c)
			}
		}
		l.conns = own
	}
	global := 0
	for home := 1; home <= s.Homes; home++ {
		for gi := range s.Groups {
			g := &s.Groups[gi]
			if !g.InHome(home) {
				continue
			}
			for range g.Count {
				i := global
				global++
				if !sh.Owns(home) {
					continue
				}
				if own != nil {
					l.devConn = append(l.devConn, len(l.devConn)%len(own))
					continue
				}
				c := connIndex(s, i, home)
				p, ok := pos[c]
				if !ok {
					p = len(l.conns)
					pos[c] = p
					l.conns = append(l.conns, c)
				}
				l.devConn = append(l.devConn, p)
			}
		}
	}
	if own != nil && sh.Whole() {
		// One process: device i rides connection i mod pool, as it always has.
		for k := range l.devConn {
			l.devConn[k] = k % len(own)
		}
	}
	return l
}

// RunID names a run in its connections' client ids ("fleetsim-RUNID-n"). Shards of one
// run must agree on it, and two runs must not (a broker disconnects a client whose id
// another takes): it derives from what the shards share, the scenario's name, the seed
// and the start time.
func RunID(scenarioName string, seed uint64, startAt time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", scenarioName, seed, startAt.UnixNano()))
	return hex.EncodeToString(h[:3])
}

// ErrStartPassed is returned by Run when Config.StartAt had passed, by more than
// StartSlack, once the connections were up.
var ErrStartPassed = errors.New("the start time had passed")

// StartSlack is how late past Config.StartAt a shard may still start: a pod scheduled a
// moment late starts at once and its lateness is in the report. Later than that, its
// schedules would not line up with the other shards' (their phases would be shifted and
// the sends they called for before it started never made), so the run stops instead.
const StartSlack = 2 * time.Second

// Size is how many devices and connections shard sh of scenario s runs (the whole fleet's
// for the zero Shard), for the checks before a run.
func (sh Shard) Size(s *scenario.Scenario) (devices, connections int) {
	l := planLayout(s, sh)
	return len(l.devConn), len(l.conns)
}
