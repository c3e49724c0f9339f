package measure

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Portable is a Recorder's contents in a form another process can read back and merge
// (reports of the shards of one run): the HDR histogram in HdrHistogram's standard V2
// compressed encoding, base64 (what Histogram.Encode writes and Java's HdrHistogram and
// its log tools read too), with the exact count, sum, min and max kept beside it, so that
// merged percentiles come from one histogram of everything, never from averages.
type Portable struct {
	Count      int64   `json:"count"`
	SumNS      float64 `json:"sum_ns"`
	MinNS      int64   `json:"min_ns"`
	MaxNS      int64   `json:"max_ns"`
	OutOfRange int64   `json:"out_of_range"`
	HDR        string  `json:"hdr"`
}

// Portable returns what r recorded so far, portably.
func (r *Recorder) Portable() Portable { return PortableOf(r) }

// PortableOf is Portable for several Recorders together (see Combined).
func PortableOf(rs ...*Recorder) Portable {
	h := newHistogram()
	p := Portable{MinNS: math.MaxInt64}
	for _, r := range rs {
		r.each(func(l *Local) {
			h.Merge(l.h)
			p.SumNS += l.sum
			p.MinNS, p.MaxNS = min(p.MinNS, l.min), max(p.MaxNS, l.max)
			p.OutOfRange += l.outOfRange
		})
	}
	return portable(h, p)
}

func portable(h *hdrhistogram.Histogram, p Portable) Portable {
	p.Count = h.TotalCount()
	if p.Count == 0 {
		p.MinNS, p.MaxNS, p.SumNS = 0, 0, 0
	}
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err == nil { // it cannot fail for a histogram made by newHistogram
		p.HDR = string(enc)
	}
	return p
}

// MergePortable adds up portable histograms, as if one Recorder had recorded everything
// they hold. An encoding that does not decode, or whose counts disagree with Count, is
// an error.
func MergePortable(ps ...Portable) (Portable, error) {
	h := newHistogram()
	out := Portable{MinNS: math.MaxInt64}
	for _, p := range ps {
		if p.Count == 0 && p.HDR == "" {
			continue
		}
		ph, err := hdrhistogram.Decode([]byte(p.HDR))
		if err != nil {
			return Portable{}, fmt.Errorf("histogram: %w", err)
		}
		if ph.TotalCount() != p.Count {
			return Portable{}, fmt.Errorf("histogram holds %d values, its count says %d", ph.TotalCount(), p.Count)
		}
		if p.Count == 0 {
			continue
		}
		if dropped := h.Merge(ph); dropped != 0 {
			return Portable{}, errors.New("histogram: values outside the range of fleetsim's histograms")
		}
		out.SumNS += p.SumNS
		out.MinNS, out.MaxNS = min(out.MinNS, p.MinNS), max(out.MaxNS, p.MaxNS)
		out.OutOfRange += p.OutOfRange
	}
	return portable(h, out), nil
}

// Percentiles summarises a portable histogram as Combined does a Recorder.
func (p Portable) Percentiles() (Percentiles, error) {
	if p.Count == 0 {
		return Percentiles{}, nil
	}
	h, err := hdrhistogram.Decode([]byte(p.HDR))
	if err != nil {
		return Percentiles{}, fmt.Errorf("histogram: %w", err)
	}
	return percentiles(h, p.SumNS, p.MinNS, p.MaxNS, p.OutOfRange), nil
}

// percentiles reads a histogram with its exact sum, min and max.
func percentiles(h *hdrhistogram.Histogram, sum float64, mn, mx, outOfRange int64) Percentiles {
	p := Percentiles{Count: h.TotalCount(), OutOfRange: outOfRange}
	if p.Count == 0 {
		return p
	}
	at := func(q float64) time.Duration {
		// The histogram reports the top of the bucket holding the value; never beyond
		// the exact maximum.
		return time.Duration(min(h.ValueAtPercentile(q), mx))
	}
	p.P50, p.P90, p.P99, p.P999 = at(50), at(90), at(99), at(99.9)
	p.Min, p.Max = time.Duration(mn), time.Duration(mx)
	p.Mean = time.Duration(math.Round(sum / float64(p.Count)))
	return p
}
