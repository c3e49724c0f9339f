package runner

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOffsetOfARoundTrip: NTP's arithmetic on a pong, and pongs that cannot be one.
func TestOffsetOfARoundTrip(t *testing.T) {
	ms := int64(time.Millisecond)
	// The reference is 100 ms ahead; 2 ms each way on the wire; it answers in 1 ms.
	t1 := 1000 * ms
	t2, t3 := t1+2*ms+100*ms, t1+3*ms+100*ms
	t4 := t1 + 5*ms
	off, delay, ok := offsetOf(stampedMsg{payload: []byte(fmtInts(t1, t2, t3)), at: t4})
	if !ok || off != 100*time.Millisecond || delay != 4*time.Millisecond {
		t.Errorf("offset %v, delay %v, %v; want 100ms, 4ms", off, delay, ok)
	}
	for _, bad := range []string{"", "1 2", "a b c", fmtInts(t1, t2, t3+10*ms)} { // the last: shard 1 answered after it was answered
		if _, _, ok := offsetOf(stampedMsg{payload: []byte(bad), at: t4}); ok {
			t.Errorf("pong %q read as a round trip", bad)
		}
	}
}

func fmtInts(v ...int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(parts, " ")
}
