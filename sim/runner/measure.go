package runner

import (
	"bytes"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
)

// LateAfter is how far behind its due time a scheduled send may leave before it counts as
// late (fleetsim_publish_late_total). It matches the scale bar's schedule lag p99 of 10 ms.
const LateAfter = 10 * time.Millisecond

// measurement is the run's end-to-end accounting (DESIGN.md §4). Every measured publish
// carries a header (publisher stream id, seq, intended send time); every receiving port
// feeds what arrives into its kind's Trackers and latency Recorders.
//
// A stream is what one device publishes on one topic, so a receiver that subscribes to
// only some of a device's topics sees no gaps. Receivers start counting a stream at the
// first message they get from it (measure.NewJoinTracker): a device that subscribes after
// a publisher started is not charged with what it was never there for. At the end,
// FinishWith counts as lost every seq a publisher sent after the last one that arrived.
type measurement struct {
	mu      sync.RWMutex // guards kinds
	kinds   map[string]*kindMeasure
	streams streamTable // every publisher stream, by id
	nextRcv atomic.Uint32
	groups  map[string]uint32 // receiver ids of shared subscriptions' groups
	window  window            // when measured traffic flowed, for its rates

	// A shard's stream ids are spread over the shards: id = (local-1)·N + I, so that a
	// receiver in another shard can tell whose they are and merge can find them (see
	// foreign). shards is 0 in one process.
	shard, shards uint32
	skew          int64 // Config.ClockSkew, ns: added to stamped and receiving times
	foreign       foreignStreams
}

// window is when the run's measured traffic flowed: from the intended send time of the
// first measured message to the delivery of the last. Rates are taken over it, not over the
// run's duration, which leaves out the connecting before and counts the grace period after.
type window struct {
	first, last atomic.Int64 // Unix nanoseconds; 0 until set
}

// sent notes a measured message's intended send time.
func (w *window) sent(t int64) {
	for {
		f := w.first.Load()
		if f != 0 && f <= t || w.first.CompareAndSwap(f, t) {
			return
		}
	}
}

// delivered notes a measured message's delivery. Deliveries are noted to the millisecond,
// so that the receivers do not all write one word for every message.
func (w *window) delivered(t int64) {
	if t > w.last.Load()+int64(time.Millisecond) {
		w.last.Store(t)
	}
}

// span is the window's length; 0 when nothing was delivered.
func (w *window) span() time.Duration {
	f, l := w.first.Load(), w.last.Load()
	if f == 0 || l <= f {
		return 0
	}
	return time.Duration(l - f)
}

func newMeasurement() *measurement {
	return &measurement{kinds: map[string]*kindMeasure{}, groups: map[string]uint32{}}
}

// outStream is one publisher stream: one device's publishes on one topic.
type outStream struct {
	id    uint32
	topic string
	last  atomic.Uint64 // highest seq sent (stored before the send, so a receiver never sees more)
}

// kindMeasure is what the receivers (and publishers) of one kind measured.
type kindMeasure struct {
	kind                                                           string
	tracker                                                        [3]*measure.Tracker  // by QoS of the delivered message
	latency                                                        [3]*measure.Recorder // intended send → delivery
	ack                                                            [3]*measure.Recorder // QoS 1 and 2: publish → acknowledgement
	lag                                                            *measure.Recorder    // scheduled sends: due → sent
	genLag                                                         *measure.Recorder    // the part of lag that is the generator's (not a shaped link's)
	late, scheduled, unmeasuredOut, unmeasuredIn, forged, retained atomic.Int64
	genLate                                                        atomic.Int64 // sends whose genLag was above LateAfter
	metrics                                                        *metrics.Kind
}

// kind returns the measurement of one kind, creating it (and its scrape-time metrics).
func (m *measurement) kind(name string, km *metrics.Kind, mm *metrics.Metrics) *kindMeasure {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.kinds[name]; k != nil {
		return k
	}
	k := &kindMeasure{kind: name, lag: measure.NewRecorder(), genLag: measure.NewRecorder(), metrics: km}
	for q := range 3 {
		k.tracker[q] = measure.NewJoinTracker()
		k.latency[q] = measure.NewRecorder()
		if q > 0 {
			k.ack[q] = measure.NewRecorder()
		}
		mm.Accounting.Add(name, byte(q), k.tracker[q].Snapshot)
	}
	m.kinds[name] = k
	return k
}

// kindList returns the kinds measured so far. The lock is not held over what the caller does
// with them (snapshots can be long): a writer waiting on it would stall every delivery.
func (m *measurement) kindList() []*kindMeasure {
	m.mu.RLock()
	defer m.mu.RUnlock()
	kinds := make([]*kindMeasure, 0, len(m.kinds))
	for _, k := range m.kinds {
		kinds = append(kinds, k)
	}
	return kinds
}

// receiverID gives each receiving port its own id for stream keys.
func (m *measurement) receiverID() uint32 { return m.nextRcv.Add(1) }

// groupReceiver is the receiver id shared by the members of a shared subscription's group.
func (m *measurement) groupReceiver(group string) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.groups[group]
	if !ok {
		id = m.nextRcv.Add(1)
		m.groups[group] = id
	}
	return id
}

// newStream registers a publisher stream; nil when there are too many to measure.
func (m *measurement) newStream(topic string) *outStream {
	return m.streams.add(topic, m.globalID)
}

// globalID is the run's id of this process's local stream id; false past 32 bits.
func (m *measurement) globalID(local uint32) (uint32, bool) {
	if m.shards <= 1 {
		return local, true
	}
	id := uint64(local-1)*uint64(m.shards) + uint64(m.shard)
	return uint32(id), id <= math.MaxUint32
}

// stream returns publisher stream id, or nil if there is none here (in a shard: if it
// is another shard's, or unknown).
func (m *measurement) stream(id uint32) *outStream {
	if m.shards > 1 {
		if id == 0 || (id-1)%m.shards+1 != m.shard {
			return nil
		}
		id = (id-1)/m.shards + 1
	}
	return m.streams.get(id)
}

// isForeign reports whether stream id belongs to another shard of the run.
func (m *measurement) isForeign(id uint32) bool {
	return m.shards > 1 && id != 0 && (id-1)%m.shards+1 != m.shard
}

// streamTable maps stream ids to publisher streams without a lock. Ids come from a
// counter, and each stream sits in a chunk that never moves: a receiver looks one up for
// every message, and a million devices register one each in their first minute, which
// behind one mutex made a convoy of the workers sending their first publishes.
type streamTable struct {
	n      atomic.Uint32 // ids handed out
	chunks [maxStreamChunks]atomic.Pointer[streamChunk]
	grow   sync.Mutex // makes chunks
}

// A streamTable holds up to maxStreamChunks × streamChunkSize (67 million) streams; a
// chunk's pointers take 128 KiB.
const (
	streamChunkBits = 14
	streamChunkSize = 1 << streamChunkBits
	maxStreamChunks = 1 << 12
)

type streamChunk [streamChunkSize]atomic.Pointer[outStream]

func (t *streamTable) add(topic string, global func(local uint32) (uint32, bool)) *outStream {
	id := t.n.Add(1)
	i := int(id-1) >> streamChunkBits
	if id == 0 || i >= maxStreamChunks {
		t.n.Add(^uint32(0))
		return nil
	}
	c := t.chunks[i].Load()
	if c == nil {
		t.grow.Lock()
		if c = t.chunks[i].Load(); c == nil {
			c = new(streamChunk)
			t.chunks[i].Store(c)
		}
		t.grow.Unlock()
	}
	gid, ok := global(id)
	if !ok {
		return nil // past the ids a shard has (see measurement.shard): unmeasured
	}
	s := &outStream{id: gid, topic: topic}
	c[(id-1)&(streamChunkSize-1)].Store(s)
	return s
}

func (t *streamTable) get(id uint32) *outStream {
	if id == 0 || id > t.n.Load() {
		return nil
	}
	c := t.chunks[int(id-1)>>streamChunkBits].Load()
	if c == nil {
		return nil
	}
	return c[(id-1)&(streamChunkSize-1)].Load()
}

// lastSeq is the highest seq publisher stream id sent, for Tracker.FinishWith.
func (m *measurement) lastSeq(id uint32) uint64 {
	if s := m.stream(id); s != nil {
		return s.last.Load()
	}
	return 0
}

// measurable reports whether the engine can put a measurement header in payload: a JSON
// object, or a payload from sim.Reserve. Anything else (plain text) goes out unmeasured.
func measurable(payload []byte) bool {
	return sim.Reserved(payload) || (len(payload) >= 2 && payload[0] == '{')
}

// stamp returns a measurable payload with header h in it, built in dst's room (dst[:0]):
// a JSON object gets the header's fields first, a reserved payload the binary header in
// its room. The device's slice is never written to: the client may still hold a publish
// after Publish returns (a timed-out QoS 1 publish stays in its store), so the device must
// be free to reuse its buffer. For the same reason dst must be a buffer the client is
// done with (see stampBufs).
func stamp(dst, payload []byte, h measure.Header) []byte {
	if sim.Reserved(payload) {
		out := measure.AppendHeader(dst[:0], h)
		return append(out, payload[measure.HeaderSize:]...)
	}
	body := bytes.TrimSpace(payload[1:])
	out := append(dst[:0], '{')
	out = measure.AppendJSONFields(out, h)
	if len(body) > 0 && body[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body...)
}

// readHeader finds the measurement header in a received payload; false when it has none
// (plain text, or a JSON object without the fields) or it is malformed.
func readHeader(payload []byte) (measure.Header, bool) {
	if len(payload) == 0 {
		return measure.Header{}, false
	}
	if payload[0] == '{' {
		h, err := measure.ParseJSONHeader(payload)
		return h, err == nil
	}
	h, _, err := measure.ParseHeader(payload)
	return h, err == nil
}

// received accounts for one message delivered to receiver rcv of kind k, at now. Retained
// messages are old news re-sent on subscribe and are not measured. A header is believed
// only if a publisher of this run sent that stream on that topic and has reached that seq:
// anyone can publish to a device's command topics, and a forged header must not move the
// numbers.
func (m *measurement) received(k *kindMeasure, rcv uint32, msg sim.Message, now time.Time) {
	if msg.Retained {
		k.retained.Add(1)
		return
	}
	h, ok := readHeader(msg.Payload)
	if !ok {
		k.unmeasuredIn.Add(1)
		k.metrics.UnmeasuredIn.Inc()
		return
	}
	local := now.UnixNano() + m.skew
	if !m.believe(h, msg.Topic, local) {
		k.forged.Add(1)
		k.metrics.Forged.Inc()
		return
	}
	q := min(msg.QoS, 2)
	switch k.tracker[q].Observe(measure.Key(rcv, h.ID), h.Seq) {
	case measure.InOrder, measure.AfterGap, measure.OutOfOrder, measure.Restart:
		m.window.delivered(now.UnixNano())
		d := time.Duration(local - h.Sent)
		k.latency[q].Record(d)
		k.metrics.Latency[q].Observe(d.Seconds())
	}
}

// believe reports whether header h, received on topic at local (this process's clock),
// can be one a publisher of the run sent. Another shard's streams cannot be checked
// here beyond their topic staying the same (merge checks them against their publisher's
// report), nor their send time against a clock that is not theirs.
func (m *measurement) believe(h measure.Header, topic string, local int64) bool {
	if m.isForeign(h.ID) {
		return m.foreign.topic(h.ID, topic)
	}
	s := m.stream(h.ID)
	return s != nil && s.topic == topic && h.Seq <= s.last.Load() && h.Sent <= local
}

// foreignStreams remembers the topic of each stream from another shard that arrived, so
// that the report can name it for merge.
type foreignStreams struct {
	topics sync.Map // uint32 → string
}

// topic records stream id's topic; false if the stream came before on another topic.
func (f *foreignStreams) topic(id uint32, topic string) bool {
	if t, ok := f.topics.Load(id); ok {
		return t.(string) == topic
	}
	t, _ := f.topics.LoadOrStore(id, topic)
	return t.(string) == topic
}

func (f *foreignStreams) get(id uint32) string {
	if t, ok := f.topics.Load(id); ok {
		return t.(string)
	}
	return ""
}
