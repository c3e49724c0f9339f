package lean

import (
	"io"
	"sync"
)

// bufReader reads a connection through a small buffer of its own while the connection is
// quiet, and through a large one from a pool while it is busy: a small packet (an
// acknowledgement) then costs one read system call, a burst of messages one per 8 KiB,
// and an idle connection holds only the small buffer. (mqttconn's read-ahead for paho,
// which holds none, reads a small packet in two calls: one for its first byte.)
type bufReader struct {
	src   io.Reader
	buf   []byte // what the last read filled: small[:] or *big
	r, w  int    // unread bytes are buf[r:w]
	err   error  // from the last read, returned once buf is read out
	big   *[]byte
	busy  bool // the last read filled its buffer: the next uses a big one
	small [smallRead]byte
}

const (
	smallRead = 256
	bigRead   = 8 << 10
)

var bigReads = sync.Pool{New: func() any { b := make([]byte, bigRead); return &b }}

// fill reads more into the buffer, which is empty.
func (b *bufReader) fill() error {
	if b.err != nil {
		err := b.err
		b.err = nil
		return err
	}
	dst := b.small[:]
	if b.busy {
		if b.big == nil {
			b.big = bigReads.Get().(*[]byte)
		}
		dst = *b.big
	} else if b.big != nil {
		bigReads.Put(b.big)
		b.big = nil
	}
	n, err := b.src.Read(dst)
	b.buf, b.r, b.w, b.busy = dst, 0, n, n == len(dst)
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	b.err = err
	return nil
}

// ReadByte returns the next byte.
func (b *bufReader) ReadByte() (byte, error) {
	if b.r == b.w {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// Read reads up to len(p) bytes: what is buffered, else one read.
func (b *bufReader) Read(p []byte) (int, error) {
	if b.r == b.w {
		if len(p) >= bigRead { // large: straight into p
			if b.err != nil {
				err := b.err
				b.err = nil
				return 0, err
			}
			return b.src.Read(p)
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// release gives the big buffer back, for a connection that ended.
func (b *bufReader) release() {
	if b.big != nil {
		bigReads.Put(b.big)
		b.big = nil
	}
}
