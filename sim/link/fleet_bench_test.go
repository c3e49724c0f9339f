package link

import (
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
)

// fleetMsg is the size of one message each way: an MQTT PUBLISH of a small reading, echoed.
const fleetMsg = 128

// BenchmarkLinks measures what shaping costs a large fleet in one process: n connections
// each carry the same request/response traffic (one 128-byte message up, echoed back, as
// fast as the link allows), bare or through a link. One op is one round trip on every
// connection. Besides ns/op, B/op and allocs/op (per round of all n connections) it
// reports:
//
//	cpu-ns/B     process CPU time (both ends, the harness's goroutines included) per byte
//	             carried, up and down; shaped minus bare is the shaper's cost per byte
//	allocs/msg   allocations per message (one message is 128 bytes one way)
//	rss-B/link   resident memory per connection, from before setup to after a first
//	             round; the harness's own (the pair, a client and an echo goroutine) is
//	             what "bare" shows
//	heap-B/link  live heap and stacks per connection after a GC, measured the same way
//	gor/link     goroutines per connection, the harness's two included
//
// pipe/10000 runs 10,000 connections over net.Pipe: no file descriptors, so the full count
// fits, and the shaping wrapper is what is measured. tcp/4000 runs 4,000 loopback TCP pairs
// (8,000 of the 20,000 open files a process may have here) for the same figures over real
// sockets; the per-connection figures scale linearly to 10,000.
//
// Profiles: bare (no link), unlimited (a pass-through link), rate (wifi's bandwidth only,
// no delay) and wifi (the full profile through NewLink: bandwidth, 2 ms + 0..8 ms delay
// each way with a goroutine each, and the outage scheduler's goroutine).
func BenchmarkLinks(b *testing.B) {
	wifi := Profiles()["wifi"]
	profiles := []struct {
		name string
		p    *Profile
	}{
		{"bare", nil},
		{"unlimited", &Profile{}},
		{"rate", &Profile{UpBytesPerSec: wifi.UpBytesPerSec, DownBytesPerSec: wifi.DownBytesPerSec}},
		{"wifi", &wifi},
	}
	for _, pr := range profiles {
		b.Run("pipe/10000/"+pr.name, func(b *testing.B) { benchFleet(b, 10000, pipePairs, pr.p) })
	}
	for _, pr := range []int{0, 3} {
		b.Run("tcp/4000/"+profiles[pr].name, func(b *testing.B) { benchFleet(b, 4000, tcpPairs, profiles[pr].p) })
	}
}

// pipePairs returns n connected pairs over net.Pipe.
func pipePairs(b *testing.B, n int) (clients, servers []net.Conn) {
	for range n {
		c, s := net.Pipe()
		clients, servers = append(clients, c), append(servers, s)
	}
	return clients, servers
}

// tcpPairs returns n connected loopback TCP pairs.
func tcpPairs(b *testing.B, n int) (clients, servers []net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan []net.Conn, 1)
	go func() {
		var ss []net.Conn
		for range n {
			s, err := ln.Accept()
			if err != nil {
				break
			}
			ss = append(ss, s)
		}
		accepted <- ss
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			ln.Close()
			<-accepted
			for _, c := range clients {
				c.Close()
			}
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	servers = <-accepted
	return clients, servers
}

func benchFleet(b *testing.B, n int, pairs func(*testing.B, int) ([]net.Conn, []net.Conn), p *Profile) {
	b.StopTimer()
	runtime.GC()
	debug.FreeOSMemory()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	rss0, gor0 := rss(), runtime.NumGoroutine()

	clients, servers := pairs(b, n)
	var links []*Link
	conns := clients
	if p != nil {
		links = make([]*Link, n)
		conns = make([]net.Conn, n)
		for i := range n {
			links[i] = NewLink(*p, nil)
			conns[i] = links[i].Wrap(clients[i])
		}
	}
	var echoes sync.WaitGroup
	for _, s := range servers {
		echoes.Go(func() { echo(s) })
	}
	// Every client runs rounds when told to, so setup and a warm-up round stay out of the
	// timing.
	type job struct {
		rounds int
		done   *sync.WaitGroup
	}
	jobs := make(chan job)
	var clientsDone sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		clientsDone.Go(func() {
			msg, buf := make([]byte, fleetMsg), make([]byte, fleetMsg)
			for j := range jobs {
				for range j.rounds {
					if _, err := c.Write(msg); err != nil {
						errs <- err
						break
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						errs <- err
						break
					}
				}
				j.done.Done()
			}
		})
	}
	run := func(rounds int) {
		var done sync.WaitGroup
		done.Add(n)
		for range n {
			jobs <- job{rounds, &done}
		}
		done.Wait()
	}
	// Warm up: one round on every connection, then measure what a running fleet holds.
	run(1)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	rss1, gor1 := rss(), runtime.NumGoroutine()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	b.StartTimer()
	run(b.N)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	close(jobs)
	clientsDone.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}

	for _, c := range conns {
		c.Close()
	}
	for _, s := range servers {
		s.Close()
	}
	echoes.Wait()
	for _, l := range links {
		l.Close()
	}

	msgs := float64(b.N) * float64(n) * 2
	if cpu > 0 {
		b.ReportMetric(float64(cpu)/(msgs*fleetMsg), "cpu-ns/B")
	}
	if rss0 > 0 {
		b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/link")
	}
	b.ReportMetric(float64(int64(ms1.HeapInuse+ms1.StackInuse)-int64(ms0.HeapInuse+ms0.StackInuse))/float64(n), "heap-B/link")
	b.ReportMetric(float64(gor1-gor0)/float64(n), "gor/link")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/msgs, "allocs/msg")
}

// echo writes back every message it reads until the connection fails.
func echo(c net.Conn) {
	buf := make([]byte, fleetMsg)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}
