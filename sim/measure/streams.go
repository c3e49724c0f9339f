package measure

import "sync"

// Window is how many of a stream's most recent sequence numbers a Tracker remembers
// exactly: for every seq in (max-Window, max], where max is the highest seq received so
// far, it knows whether that seq has arrived. A stream costs about 200 bytes however long
// the run.
const Window = 1024

// StreamKey names one stream: the messages one receiver gets from one publisher. The
// engine packs what identifies its streams into it, for instance Key(subscriber, publisher).
// Keep one Tracker per class that is reported apart (per QoS, say).
type StreamKey uint64

// Key packs two 32-bit ids into a StreamKey.
func Key(receiver, publisher uint32) StreamKey {
	return StreamKey(uint64(receiver)<<32 | uint64(publisher))
}

// Outcome is what one observed message was to its stream.
type Outcome uint8

const (
	InOrder    Outcome = iota // the next seq after the highest so far
	AfterGap                  // higher than the next one expected: the seqs between are missing
	OutOfOrder                // fills a missing seq below the highest so far
	Duplicate                 // a seq already received, within the window
	TooLate                   // below the window: its fate was already settled (see Tracker)
	Restart                   // seq 1 far below the window: the publisher restarted (see Tracker)
	Invalid                   // seq 0, which no publisher sends
)

var outcomeNames = [...]string{"in_order", "after_gap", "out_of_order", "duplicate", "too_late", "restart", "invalid"}

// String returns a short snake_case name, usable as a bounded metric label.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Totals are a Tracker's counts summed over its streams.
type Totals struct {
	Streams    int    // streams seen
	Delivered  uint64 // distinct messages received (in order or not); includes OutOfOrder
	OutOfOrder uint64 // received after a higher seq of the same stream
	Duplicates uint64 // received again while still within the window
	Gaps       uint64 // times a seq arrived more than one above the highest so far
	Missing    uint64 // not received yet but still within the window (0 after Finish)
	Lost       uint64 // never received: fell out of the window, or still missing at Finish
	TooLate    uint64 // arrived below the window; neither Delivered nor taken off Lost
	Restarts   uint64 // times a stream started again at seq 1
	Invalid    uint64 // seq 0
}

// Expected is how many messages should have arrived: Delivered + Missing + Lost.
func (t Totals) Expected() uint64 { return t.Delivered + t.Missing + t.Lost }

// LossRatio is Lost / Expected, or 0 when nothing was expected.
func (t Totals) LossRatio() float64 {
	if e := t.Expected(); e > 0 {
		return float64(t.Lost) / float64(e)
	}
	return 0
}

// Add adds o's counts to t: the totals of several trackers, such as one per receiving kind.
func (t *Totals) Add(o Totals) {
	t.Streams += o.Streams
	t.Delivered += o.Delivered
	t.OutOfOrder += o.OutOfOrder
	t.Duplicates += o.Duplicates
	t.Gaps += o.Gaps
	t.Missing += o.Missing
	t.Lost += o.Lost
	t.TooLate += o.TooLate
	t.Restarts += o.Restarts
	t.Invalid += o.Invalid
}

func (t *Totals) add(s *stream) {
	t.Streams++
	t.Delivered += s.delivered
	t.OutOfOrder += s.outOfOrder
	t.Duplicates += s.duplicates
	t.Gaps += s.gaps
	t.Missing += uint64(s.missing)
	t.Lost += s.lost
	t.TooLate += s.tooLate
	t.Restarts += s.restarts
	t.Invalid += s.invalid
}

// Tracker does end-to-end sequence accounting: receivers feed it every measured message's
// stream and seq, and it counts what arrived, in what order, twice, or never. It is safe
// for concurrent use; streams are spread over mutex-guarded shards, so receivers of
// different streams rarely contend.
//
// Sequence numbers start at 1 in every stream (0 is Invalid), so a stream whose first
// messages never arrive shows them as lost. A receiver must therefore subscribe before its
// publishers start, or the messages it was never meant to see count as lost. A Tracker made
// by NewJoinTracker instead starts each stream at the first seq it receives, for receivers
// that join streams already running; FinishWith then settles the streams' tails.
//
// Loss is final only at the end. A seq above max+1 opens a gap: the seqs between count as
// Missing; one that arrives later becomes OutOfOrder (and Delivered), not a Duplicate. A
// missing seq that falls out of the window (max moves Window or more past it) becomes Lost
// for good; if it arrives after all it is TooLate: counted on its own, not Delivered, and
// Lost is not lowered, since beyond the window a late message and a duplicate cannot be
// told apart. Finish turns what is still Missing into Lost. A huge jump (publisher skipped
// a billion seqs) costs the same as a small one: the skipped seqs are Lost in one addition.
//
// A publisher that restarts and counts from 1 again should get a new id (the engine owns
// ids), making a new stream; that is always right. If it keeps its id, seq 1 arriving
// below the window is taken as a Restart: what the old run still missed becomes Lost and
// the stream starts afresh. Seq 1 arriving within the window cannot be told from a
// duplicate, so a restart in a stream's first Window messages shows as duplicates.
type Tracker struct {
	shards [trackerShards]trackerShard
	join   bool // a stream starts at its first received seq
}

const trackerShards = 64 // a power of two

type trackerShard struct {
	mu      sync.Mutex
	streams map[StreamKey]*stream
	_       [40]byte // keep neighbouring shards' locks off one cache line
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	t := &Tracker{}
	for i := range t.shards {
		t.shards[i].streams = make(map[StreamKey]*stream)
	}
	return t
}

func (t *Tracker) shard(k StreamKey) *trackerShard {
	// Fibonacci hashing: consecutive ids (the usual case) spread over all shards.
	return &t.shards[(uint64(k)*0x9E3779B97F4A7C15)>>(64-6)]
}

// NewJoinTracker returns an empty Tracker whose streams begin at the first seq received:
// the seqs before it are not expected (the receiver was not there yet), and one of them
// arriving later counts as a Duplicate if within the window, TooLate below it.
func NewJoinTracker() *Tracker {
	t := NewTracker()
	t.join = true
	return t
}

// Observe records that the message with seq arrived on stream k and says what it was.
// It does not allocate except the first time a stream is seen.
func (t *Tracker) Observe(k StreamKey, seq uint64) Outcome {
	sh := t.shard(k)
	sh.mu.Lock()
	s := sh.streams[k]
	if s == nil {
		s = &stream{first: 1}
		sh.streams[k] = s
		if t.join && seq > 1 {
			s.joinAt(seq)
			s.first = seq
		}
	}
	o := s.observe(seq)
	sh.mu.Unlock()
	return o
}

// Snapshot returns the totals so far. Missing seqs may still arrive, so they are reported
// apart from Lost. Each shard is read under its lock; the shards are not frozen together,
// so a snapshot taken while receivers run is a consistent sum per stream, not per instant.
func (t *Tracker) Snapshot() Totals {
	var tot Totals
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, s := range sh.streams {
			tot.add(s)
		}
		sh.mu.Unlock()
	}
	return tot
}

// Finish returns the final totals: Snapshot with every seq still missing counted as Lost.
// Call it once receivers have stopped (after the drain time the engine allows for late
// messages). It changes nothing, so it may be called again.
func (t *Tracker) Finish() Totals {
	tot := t.Snapshot()
	tot.Lost += tot.Missing
	tot.Missing = 0
	return tot
}

// FinishWith is Finish for streams whose publishers say how far they got: last returns the
// highest seq the publisher of a stream sent (0 if unknown), and every seq above what the
// stream received, up to it, is Lost too. This counts the tail that Finish cannot see: the
// messages a publisher sent after the last one that arrived. The publisher is the low 32
// bits of the StreamKey (see Key).
func (t *Tracker) FinishWith(last func(publisher uint32) uint64) Totals {
	tot := t.Finish()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, s := range sh.streams {
			if l := last(uint32(k)); l > s.max {
				tot.Lost += l - s.max
			}
		}
		sh.mu.Unlock()
	}
	return tot
}

// StreamTally is one stream's final counts, for a receiver's report that another
// process merges with its publisher's (see FinishWith for Lost's tail).
type StreamTally struct {
	Key                                        StreamKey
	First, Max                                 uint64 // the seq the stream began at, and the highest received
	Delivered, Duplicates, OutOfOrder, TooLate uint64
	Lost                                       uint64 // as FinishWith counts it: missing, fallen out of the window, and the tail up to last
	Restarts                                   uint64
}

// Tallies returns every stream's final counts, as FinishWith(last) sums them; last may
// return 0 for a publisher it does not know, whose tail is then not counted.
func (t *Tracker) Tallies(last func(publisher uint32) uint64) []StreamTally {
	var out []StreamTally
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, s := range sh.streams {
			st := StreamTally{Key: k, First: s.first, Max: s.max, Delivered: s.delivered, Duplicates: s.duplicates,
				OutOfOrder: s.outOfOrder, TooLate: s.tooLate, Lost: s.lost + uint64(s.missing), Restarts: s.restarts}
			if l := last(uint32(k)); l > s.max {
				st.Lost += l - s.max
			}
			out = append(out, st)
		}
		sh.mu.Unlock()
	}
	return out
}

// stream is one stream's state. bits has the bit for seq q at q%Window set iff q was
// received, for q in (max-Window, max]; every other bit is clear.
type stream struct {
	max     uint64 // highest seq received; 0 before the first
	first   uint64 // the seq the stream began at (1, or where a join tracker joined it)
	missing uint32 // seqs in (max-Window, max], at least 1, not received
	bits    [Window / 64]uint64

	delivered, outOfOrder, duplicates, gaps, lost, tooLate, restarts, invalid uint64
}

func (s *stream) has(q uint64) bool { return s.bits[q/64%(Window/64)]&(1<<(q%64)) != 0 }
func (s *stream) set(q uint64)      { s.bits[q/64%(Window/64)] |= 1 << (q % 64) }
func (s *stream) clear(q uint64)    { s.bits[q/64%(Window/64)] &^= 1 << (q % 64) }

// joinAt makes a new stream begin just before seq: every seq below it counts as received.
func (s *stream) joinAt(seq uint64) {
	s.max = seq - 1
	for q := max(1, int64(seq)-Window+1); q < int64(seq); q++ {
		s.set(uint64(q))
	}
}

func (s *stream) observe(seq uint64) Outcome {
	switch {
	case seq == 0:
		s.invalid++
		return Invalid
	case seq > s.max:
		return s.advance(seq)
	case s.max >= Window && seq <= s.max-Window:
		if seq != 1 {
			s.tooLate++
			return TooLate
		}
		// A restart: settle the old run and begin again.
		s.lost += uint64(s.missing)
		s.missing = 0
		s.bits = [Window / 64]uint64{}
		s.max = 0
		s.restarts++
		s.advance(1)
		return Restart
	case s.has(seq):
		s.duplicates++
		return Duplicate
	default:
		s.set(seq)
		s.missing--
		s.delivered++
		s.outOfOrder++
		return OutOfOrder
	}
}

// advance handles seq > max: the window slides up to end at seq.
func (s *stream) advance(seq uint64) Outcome {
	out := InOrder
	gap := seq - s.max - 1 // seqs newly missing, before trimming to the window
	if gap > 0 {
		s.gaps++
		out = AfterGap
	}
	if seq-s.max >= Window {
		// The whole old window slides out, and maybe seqs that never entered it.
		s.lost += uint64(s.missing)
		s.bits = [Window / 64]uint64{}
		if seq > Window {
			s.lost += seq - Window - s.max // (max, seq-Window]: skipped entirely
		}
		s.missing = uint32(min(gap, Window-1, seq-1))
	} else {
		// Retire (max-Window, seq-Window], at most Window-1 seqs; only seqs >= 1 exist.
		for q := s.max + 1; q < seq+1; q++ {
			if q <= Window {
				continue
			}
			old := q - Window
			if s.has(old) {
				s.clear(old)
			} else {
				s.lost++
				s.missing--
			}
		}
		s.missing += uint32(gap)
	}
	s.set(seq)
	s.max = seq
	s.delivered++
	return out
}
