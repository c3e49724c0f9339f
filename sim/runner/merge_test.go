package runner

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/sim/measure"
)

// shardOf is a shard's summary with the given streams, as a report would read back.
func shardOf(i, n int, pub []PublishedStream, rcv []ReceivedStream) Report {
	s := &Summary{Scenario: "s", Sharding: ShardInfo{Shard: Shard{i, n}, RunID: "r"}, Portable: Portable{Streams: true, Published: pub, Received: rcv}}
	for _, r := range rcv {
		k := MeasuredKind{Kind: r.Kind, QoS: r.QoS, Totals: measure.Totals{Streams: 1, Delivered: r.Delivered, Lost: r.Lost, Duplicates: r.Duplicates}}
		s.Measured.ByKind = append(s.Measured.ByKind, k)
	}
	return Report{Name: "shard" + Shard{i, n}.String(), Summary: s}
}

func received(rcv string, id uint32, topic string, first, maxSeq, delivered, lost uint64) ReceivedStream {
	return ReceivedStream{Kind: "sink", Receiver: rcv, ID: id, Topic: topic,
		StreamTally: measure.StreamTally{First: first, Max: maxSeq, Delivered: delivered, Lost: lost}}
}

// TestMergeCountsWhatNoShardCould: a stream published in shard 1 and received in shard 2
// gets its tail; a shared subscription's group with members in both shards is one
// receiver; a stream no shard published is forged.
func TestMergeCountsWhatNoShardCould(t *testing.T) {
	pub := []PublishedStream{{ID: 1, Topic: "a", Last: 100}, {ID: 3, Topic: "b", Last: 50}}
	s1 := shardOf(1, 2, pub, []ReceivedStream{
		received("group:g", 3, "b", 1, 49, 25, 24), // the group's member here got the odd seqs, say
	})
	s2 := shardOf(2, 2, nil, []ReceivedStream{
		received("7", 1, "a", 1, 90, 88, 2),        // 2 gaps, and 91..100 never came: a tail shard 2 cannot see
		received("group:g", 3, "b", 2, 50, 24, 25), // the other member: together 49 of 50
		received("7", 5, "x", 1, 10, 10, 0),        // no shard published stream 5
	})
	for _, order := range [][]Report{{s1, s2}, {s2, s1}} {
		sum, err := Merge(order)
		if err != nil {
			t.Fatal(err)
		}
		tot := sum.Measured.All.Totals
		if tot.Delivered != 88+25+24 || tot.Lost != 2+10+1 || tot.Streams != 2 || sum.Measured.Forged != 10 {
			t.Errorf("merged %+v, forged %d; want 137 delivered, 13 lost (2 gaps, a tail of 10, 1 the group missed), 2 streams, 10 forged",
				tot, sum.Measured.Forged)
		}
	}
}

func TestMergeNamesTheReportThatDoesNotFit(t *testing.T) {
	s1, s2 := shardOf(1, 2, nil, nil), shardOf(2, 2, nil, nil)
	other := shardOf(2, 2, nil, nil)
	other.Sharding.RunID, other.Name = "q", "other.json"
	plain := Report{Name: "plain.json", Summary: &Summary{Scenario: "s"}}
	dup := shardOf(1, 2, []PublishedStream{{ID: 1, Topic: "a"}}, nil)
	dup2 := shardOf(2, 2, []PublishedStream{{ID: 1, Topic: "a"}}, nil)
	for name, c := range map[string]struct {
		rs   []Report
		want string
	}{
		"another run":     {[]Report{s1, other}, "other.json: run q"},
		"a plain report":  {[]Report{s1, plain}, "plain.json: not a shard's report"},
		"a stream twice":  {[]Report{dup, dup2}, "stream 1 published by shard 1 too"},
		"a missing shard": {[]Report{s2, shardOf(3, 3, nil, nil)}, "shards of different splits"},
	} {
		_, err := Merge(c.rs)
		var me *MergeError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a MergeError saying %q", name, err, c.want)
		}
	}
	if _, err := Merge([]Report{s1, s2}); err != nil {
		t.Errorf("shards 1 and 2 of 2: %v", err)
	}
}
