package lean

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// TestBytesPerConnection measures what an idle connection costs the client (Go heap and
// stacks), against mosquitto so that the broker's side is not in the count, and holds it
// to the bar of 10 KB.
func TestBytesPerConnection(t *testing.T) {
	m := testbroker.StartMosquitto(t, testbroker.Config{})
	const n = 500
	var stacks int64
	mem := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		stacks = int64(ms.StackInuse) - stacks
		return int64(ms.HeapAlloc + ms.StackInuse)
	}
	conns := make([]*Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := mem()
	g0 := runtime.NumGoroutine()
	for i := range n {
		c, err := Dial(context.Background(), Config{Options: mqttconn.Options{Broker: m.URL(), ConnectTimeout: 5 * time.Second}}, fmt.Sprintf("mem-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	per := (mem() - before) / n
	goroutines := float64(runtime.NumGoroutine()-g0) / n
	t.Logf("an idle lean connection: %d B (Go heap and stacks; stacks %d B), %.2f goroutines", per, stacks/n, goroutines)
	if per > 10_000 || goroutines > 1.01 {
		t.Errorf("%d B and %.2f goroutines a connection, want at most 10 KB and 1", per, goroutines)
	}
}
