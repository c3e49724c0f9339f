package measure

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{ID: 1, Seq: 1, Sent: 1_700_000_000_123_456_789},
		{ID: math.MaxUint32, Seq: math.MaxUint64, Sent: math.MinInt64},
		{ID: 7, Seq: 42, Sent: -1},
	} {
		p := AppendHeader([]byte("pre"), h)
		if len(p) != 3+HeaderSize {
			t.Fatalf("len = %d, want %d", len(p), 3+HeaderSize)
		}
		p = append(p, "body"...)
		got, rest, err := ParseHeader(p[3:])
		if err != nil || got != h || string(rest) != "body" {
			t.Errorf("ParseHeader(AppendHeader(%+v)) = %+v, %q, %v", h, got, rest, err)
		}
	}
}

func TestAppendHeaderNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64)
	h := Header{ID: 3, Seq: 9, Sent: 12345}
	if n := testing.AllocsPerRun(100, func() { _ = AppendHeader(buf[:0], h) }); n != 0 {
		t.Errorf("AppendHeader allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = AppendJSONFields(buf[:0], h) }); n != 0 {
		t.Errorf("AppendJSONFields allocates %v times", n)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := AppendHeader(nil, Header{ID: 5, Seq: 6, Sent: 7})
	flip := func(i int, b byte) []byte {
		p := bytes.Clone(good)
		p[i] ^= b
		return p
	}
	for _, tc := range []struct {
		name string
		p    []byte
		want error
	}{
		{"nil", nil, ErrShortHeader},
		{"magic only", good[:1], ErrShortHeader},
		{"one short", good[:HeaderSize-1], ErrShortHeader},
		{"plain text", []byte(`{"temp":21.5,"unit":"C"}`), ErrNotMeasured},
		{"zero bytes", make([]byte, HeaderSize), ErrNotMeasured},
		{"future version", flip(0, 0x03), ErrHeaderVersion},
		{"version zero", flip(0, 0x01), ErrHeaderVersion},
		{"id bit flipped", flip(2, 0x10), ErrHeaderCheck},
		{"seq bit flipped", flip(12, 0x01), ErrHeaderCheck},
		{"sent bit flipped", flip(20, 0x80), ErrHeaderCheck},
		{"check flipped", flip(22, 0x01), ErrHeaderCheck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rest, err := ParseHeader(tc.p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if h != (Header{}) || rest != nil {
				t.Errorf("on error got %+v, %q; want zero values", h, rest)
			}
		})
	}
}

func TestParseJSONHeader(t *testing.T) {
	want := Header{ID: 7, Seq: 42, Sent: 1_700_000_000_000_000_001}
	for _, tc := range []struct {
		name    string
		in      string
		want    Header
		wantErr error // nil with ok=false means any error
		ok      bool
	}{
		{name: "only header", in: `{"pub":7,"seq":42,"sent_ns":1700000000000000001}`, want: want, ok: true},
		{name: "other members and nesting skipped", in: ` {"temp":21.5,"seq":42,"nested":{"id":1,"a":[1,{"seq":2}]},"pub":7,"tags":["x"],"ok":true,"n":null,"sent_ns":1700000000000000001} `, want: want, ok: true},
		{name: "max values", in: `{"pub":4294967295,"seq":18446744073709551615,"sent_ns":-9223372036854775808}`, want: Header{ID: math.MaxUint32, Seq: math.MaxUint64, Sent: math.MinInt64}, ok: true},
		{name: "missing sent", in: `{"pub":7,"seq":42}`, wantErr: ErrMissingField},
		{name: "case differs", in: `{"ID":7,"seq":42,"sent_ns":1}`, wantErr: ErrMissingField},
		{name: "empty object", in: `{}`, wantErr: ErrMissingField},
		{name: "id too big", in: `{"pub":4294967296,"seq":42,"sent_ns":1}`},
		{name: "negative seq", in: `{"pub":1,"seq":-1,"sent_ns":1}`},
		{name: "fractional", in: `{"pub":1.5,"seq":1,"sent_ns":1}`},
		{name: "string value", in: `{"pub":"7","seq":42,"sent_ns":1}`},
		{name: "repeated", in: `{"pub":7,"pub":8,"seq":42,"sent_ns":1}`},
		{name: "array", in: `[1,2,3]`},
		{name: "truncated", in: `{"pub":7,"seq":42,"sent_ns":1`},
		{name: "trailing data", in: `{"pub":7,"seq":42,"sent_ns":1}x`},
		{name: "second object", in: `{"pub":7,"seq":42,"sent_ns":1}{}`},
		{name: "binary header", in: string(AppendHeader(nil, want))},
		{name: "empty", in: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJSONHeader([]byte(tc.in))
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != (Header{}) {
				t.Errorf("on error got %+v, want zero", got)
			}
		})
	}
}

func TestAppendJSONFields(t *testing.T) {
	h := Header{ID: 7, Seq: 42, Sent: -5}
	p := append([]byte(`{"temp":1,`), AppendJSONFields(nil, h)...)
	p = append(p, '}')
	if want := `{"temp":1,"pub":7,"seq":42,"sent_ns":-5}`; string(p) != want {
		t.Fatalf("got %s, want %s", p, want)
	}
	if got, err := ParseJSONHeader(p); err != nil || got != h {
		t.Fatalf("ParseJSONHeader = %+v, %v", got, err)
	}
}

// FuzzParseHeader checks that neither parser panics on any input, that whatever
// ParseHeader accepts re-encodes to the same bytes, and that every header round-trips
// through both encodings.
func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{ID: 1, Seq: 2, Sent: 3}), uint32(1), uint64(2), int64(3))
	f.Add([]byte(`{"pub":1,"seq":2,"sent_ns":3}`), uint32(0), uint64(0), int64(0))
	f.Add([]byte{0xF1}, uint32(math.MaxUint32), uint64(math.MaxUint64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, p []byte, id uint32, seq uint64, sent int64) {
		if h, rest, err := ParseHeader(p); err == nil {
			if again := AppendHeader(nil, h); !bytes.Equal(again, p[:HeaderSize]) {
				t.Fatalf("accepted %x but re-encodes to %x", p[:HeaderSize], again)
			}
			if len(rest) != len(p)-HeaderSize {
				t.Fatalf("rest has %d bytes, want %d", len(rest), len(p)-HeaderSize)
			}
		}
		_, _ = ParseJSONHeader(p)

		h := Header{ID: id, Seq: seq, Sent: sent}
		got, rest, err := ParseHeader(AppendHeader(nil, h))
		if err != nil || got != h || len(rest) != 0 {
			t.Fatalf("binary round trip of %+v: %+v, %d, %v", h, got, len(rest), err)
		}
		obj := append(append([]byte("{"), AppendJSONFields(nil, h)...), '}')
		if got, err := ParseJSONHeader(obj); err != nil || got != h {
			t.Fatalf("JSON round trip of %+v (%s): %+v, %v", h, obj, got, err)
		}
	})
}

func TestIntended(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	if got := (Header{Sent: at.UnixNano()}).Intended(); !got.Equal(at) {
		t.Errorf("Intended = %v, want %v", got, at)
	}
}
