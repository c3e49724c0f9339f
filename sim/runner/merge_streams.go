package runner

import (
	"fmt"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// streamPart is one shard's part of a received stream.
type streamPart struct {
	shard int
	ReceivedStream
}

// pubStream is a published stream and the shard that published it.
type pubStream struct {
	shard int
	PublishedStream
}

// receivedKey names a received stream in the run: a receiver of one shard, or a shared
// subscription's group in any shard, and the stream.
type receivedKey struct {
	kind     string
	qos      int
	receiver string
	id       uint32
}

// mergeStreams corrects the shards' loss from their streams' tallies (see Merge): totals
// returns the totals of a receiving kind and QoS to correct. Each shard counted its
// streams' loss up to the last seq it received, and the tail after it only when the
// publisher ran in the same shard; a group's members in several shards each counted the
// seqs the others got as missing. The stream's true loss replaces what the shards counted.
// A stream no shard published, or on another topic than its publisher's, is moved to
// Forged, as one process does with a header no publisher of the run sent.
func (s *Summary) mergeStreams(rs []Report, totals func(kind string, qos int) *measure.Totals) (map[shardPair]uint64, error) {
	if !rs[0].Portable.Streams {
		return nil, nil
	}
	cross := map[shardPair]uint64{}
	pubs := map[uint32]pubStream{}
	for _, r := range rs {
		for _, p := range r.Portable.Published {
			if o, dup := pubs[p.ID]; dup {
				return nil, &MergeError{r.Name, fmt.Errorf("stream %d published by shard %d too: shards of different runs", p.ID, o.shard)}
			}
			pubs[p.ID] = pubStream{r.Sharding.Shard.Index, p}
		}
	}
	parts := map[receivedKey][]streamPart{}
	var order []receivedKey
	for _, r := range rs {
		sh := r.Sharding.Shard.Index
		for _, rcv := range r.Portable.Received {
			k := receivedKey{rcv.Kind, rcv.QoS, rcv.Receiver, rcv.ID}
			if !isGroup(rcv.Receiver) {
				k.receiver = fmt.Sprintf("%d:%s", sh, rcv.Receiver)
			}
			if parts[k] == nil {
				order = append(order, k)
			}
			parts[k] = append(parts[k], streamPart{sh, rcv})
		}
	}
	for _, k := range order {
		t := totals(k.kind, k.qos)
		pub, ok := pubs[k.id]
		ps := parts[k]
		if !ok || pub.Topic != ps[0].Topic {
			forge(t, &s.Measured, ps)
			continue
		}
		counted, truth := streamLoss(pub, ps)
		t.Lost = uint64(int64(t.Lost) + truth - counted)
		t.Streams -= len(ps) - 1
		for _, p := range ps {
			if p.shard != pub.shard {
				cross[shardPair{pub.shard, p.shard}] += p.Delivered
			}
		}
	}
	return cross, nil
}

// shardPair is a publisher's shard and a receiver's.
type shardPair struct{ from, to int }

func isGroup(receiver string) bool { return len(receiver) > 6 && receiver[:6] == "group:" }

// streamLoss returns what the shards counted lost of one received stream, and the truth.
func streamLoss(pub pubStream, ps []streamPart) (counted, truth int64) {
	if len(ps) == 1 {
		p := ps[0]
		counted = int64(p.Lost)
		truth = counted
		if p.shard != pub.shard && pub.Last > p.Max {
			truth += int64(pub.Last - p.Max) // the tail its shard could not see
		}
		return counted, truth
	}
	// A group's members in several shards: one receiver of everything they got together.
	// (A seq that reached two members, in different shards, counts twice as delivered.)
	first, top := ps[0].First, pub.Last
	var delivered uint64
	for _, p := range ps {
		counted += int64(p.Lost)
		first, top = min(first, p.First), max(top, p.Max)
		delivered += p.Delivered
	}
	return counted, max(0, int64(top-first+1)-int64(delivered))
}

// forge moves a stream no shard published from the accounting to Forged.
func forge(t *measure.Totals, m *Measured, ps []streamPart) {
	for _, p := range ps {
		t.Delivered -= p.Delivered
		t.Lost -= p.Lost
		t.Duplicates -= p.Duplicates
		t.OutOfOrder -= p.OutOfOrder
		t.Streams--
		m.Forged += int64(p.Delivered + p.Duplicates)
	}
}
