// Package measure holds the building blocks that make a load test's numbers true
// (DESIGN.md §4): the header every measured payload carries (Header), end-to-end sequence
// accounting per stream (Tracker), an exact latency histogram (Recorder) and k6-style
// pass/fail thresholds (Threshold). The open-model send schedules whose due times the
// header carries are sim/pace's.
//
// Nothing here touches MQTT, sockets or a clock of its own: the engine feeds in what it
// sends and receives, and reads the totals at the end.
package measure

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// Header is what every measured payload carries: who sent it, its place in the sender's
// stream, and when it was meant to be sent (not when it was: see sim/pace).
type Header struct {
	ID   uint32 // publisher id, unique within the run
	Seq  uint64 // sequence number within the publisher's stream, from 1
	Sent int64  // intended send time, Unix nanoseconds
}

// Intended is the intended send time as a time.Time.
func (h Header) Intended() time.Time { return time.Unix(0, h.Sent) }

// The binary header is HeaderSize bytes, all integers big-endian:
//
//	[0]      magic and version: high nibble 0xF, low nibble the version (1)
//	[1:5]    ID
//	[5:13]   Seq
//	[13:21]  Sent
//	[21:23]  check: low 16 bits of CRC-32C over bytes [0:21]
//
// The size is fixed so that a payload's size does not change as Seq grows, which matters
// when a test sets the payload size or a link's bandwidth. The check makes random or
// foreign payloads fail (about 1 in 2^20 passes by chance: magic nibble and check); it is
// no defence against a forger who knows the format, and is not meant to be.
//
// The header is what fills the room sim.Reserve keeps at the start of a payload, so its size
// is that room's, and its first byte the mark Reserve puts there: the checks below do not
// compile when the layout above no longer fills HeaderSize, or starts with another byte.
const (
	HeaderSize    = sim.HeaderRoom
	headerVersion = 1
	magicNibble   = 0xF0
)

var (
	_ [HeaderSize - (1 + 4 + 8 + 8 + 2)]struct{}
	_ [(1 + 4 + 8 + 8 + 2) - HeaderSize]struct{}
	_ [sim.HeaderMark - (magicNibble | headerVersion)]struct{}
	_ [(magicNibble | headerVersion) - sim.HeaderMark]struct{}
)

// Errors returned by ParseHeader and ParseJSONHeader; check them with errors.Is.
var (
	ErrShortHeader   = errors.New("measure: payload shorter than the header")
	ErrNotMeasured   = errors.New("measure: payload has no measurement header (bad magic)")
	ErrHeaderVersion = errors.New("measure: unsupported header version")
	ErrHeaderCheck   = errors.New("measure: header check failed (corrupt or forged)")
	ErrMissingField  = errors.New("measure: JSON payload lacks a header field")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendHeader appends h's binary encoding (HeaderSize bytes) to dst and returns the
// extended slice. It does not allocate when dst has room.
func AppendHeader(dst []byte, h Header) []byte {
	start := len(dst)
	dst = append(dst, magicNibble|headerVersion)
	dst = binary.BigEndian.AppendUint32(dst, h.ID)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Sent))
	sum := crc32.Checksum(dst[start:], castagnoli)
	return binary.BigEndian.AppendUint16(dst, uint16(sum))
}

// ParseHeader decodes the header at the start of p and returns it with the rest of the
// payload. It never panics; on error the Header is zero and rest is nil.
func ParseHeader(p []byte) (h Header, rest []byte, err error) {
	if len(p) == 0 {
		return Header{}, nil, fmt.Errorf("%w: empty payload", ErrShortHeader)
	}
	if p[0]&0xF0 != magicNibble {
		return Header{}, nil, fmt.Errorf("%w: first byte 0x%02x", ErrNotMeasured, p[0])
	}
	if v := p[0] & 0x0F; v != headerVersion {
		return Header{}, nil, fmt.Errorf("%w: %d (this build reads %d)", ErrHeaderVersion, v, headerVersion)
	}
	if len(p) < HeaderSize {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, need %d", ErrShortHeader, len(p), HeaderSize)
	}
	want := binary.BigEndian.Uint16(p[21:23])
	if got := uint16(crc32.Checksum(p[:21], castagnoli)); got != want {
		return Header{}, nil, fmt.Errorf("%w: 0x%04x, computed 0x%04x", ErrHeaderCheck, want, got)
	}
	h = Header{
		ID:   binary.BigEndian.Uint32(p[1:5]),
		Seq:  binary.BigEndian.Uint64(p[5:13]),
		Sent: int64(binary.BigEndian.Uint64(p[13:21])),
	}
	return h, p[HeaderSize:], nil
}

// JSON field names of the header in human-readable payloads, e.g.
// {"pub":7,"seq":42,"sent_ns":1700000000000000000,"temp":21.5}.
const (
	FieldID   = "pub"
	FieldSeq  = "seq"
	FieldSent = "sent_ns"
)

// AppendJSONFields appends the header as JSON members, without braces or a trailing comma
// (`"pub":7,"seq":42,"sent_ns":1700000000000000000`), for the caller to place inside its
// own object. It does not allocate when dst has room.
func AppendJSONFields(dst []byte, h Header) []byte {
	dst = append(dst, `"`+FieldID+`":`...)
	dst = strconv.AppendUint(dst, uint64(h.ID), 10)
	dst = append(dst, `,"`+FieldSeq+`":`...)
	dst = strconv.AppendUint(dst, h.Seq, 10)
	dst = append(dst, `,"`+FieldSent+`":`...)
	return strconv.AppendInt(dst, h.Sent, 10)
}

// ParseJSONHeader extracts the header fields (FieldID, FieldSeq, FieldSent) from a JSON
// object and skips its other members without building values for them. All three must be
// present as integers in range; a missing one is ErrMissingField, malformed JSON, a value of
// the wrong type or trailing data is a plain error. Names match exactly ("PUB" is not "pub"),
// and a repeated header field is an error rather than last-one-wins.
func ParseJSONHeader(p []byte) (Header, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Header{}, errors.New("measure: JSON header: payload is not a JSON object")
	}
	var h Header
	var seen [3]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Header{}, fmt.Errorf("measure: JSON header: %w", err)
		}
		key, _ := tok.(string) // object keys are always strings
		i := -1
		switch key {
		case FieldID:
			i = 0
		case FieldSeq:
			i = 1
		case FieldSent:
			i = 2
		}
		if i < 0 {
			if err := skipValue(dec); err != nil {
				return Header{}, fmt.Errorf("measure: JSON header: %w", err)
			}
			continue
		}
		if seen[i] {
			return Header{}, fmt.Errorf("measure: JSON header: field %q repeated", key)
		}
		seen[i] = true
		tok, err = dec.Token()
		if err != nil {
			return Header{}, fmt.Errorf("measure: JSON header: %w", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return Header{}, fmt.Errorf("measure: JSON header: field %q is not a number", key)
		}
		switch i {
		case 0:
			v, err := strconv.ParseUint(string(num), 10, 32)
			if err != nil {
				return Header{}, fmt.Errorf("measure: JSON header: field %q: want an integer in [0, 2^32): %s", key, num)
			}
			h.ID = uint32(v)
		case 1:
			v, err := strconv.ParseUint(string(num), 10, 64)
			if err != nil {
				return Header{}, fmt.Errorf("measure: JSON header: field %q: want an integer in [0, 2^64): %s", key, num)
			}
			h.Seq = v
		case 2:
			v, err := strconv.ParseInt(string(num), 10, 64)
			if err != nil {
				return Header{}, fmt.Errorf("measure: JSON header: field %q: want a 64-bit integer: %s", key, num)
			}
			h.Sent = v
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Header{}, fmt.Errorf("measure: JSON header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Header{}, errors.New("measure: JSON header: data after the object")
	}
	for i, name := range [3]string{FieldID, FieldSeq, FieldSent} {
		if !seen[i] {
			return Header{}, fmt.Errorf("%w: %q", ErrMissingField, name)
		}
	}
	return h, nil
}

// skipValue consumes one JSON value (scalar, array or object) from dec.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
