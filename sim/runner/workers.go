package runner

import (
	"sync"
	"sync/atomic"
	"time"
)

// workers run the engine's side of the devices' publishes: stamping, sending, waiting for
// the acknowledgement, counting. A device's goroutine only hands its publish over and
// waits for the answer, so its own stack never grows past the 2 KiB a goroutine starts
// with. That is what a million mostly idle devices cost: Go never shrinks a stack that grew
// to 4 KiB back to 2 KiB (runtime.shrinkstack keeps it unless under about 200 bytes are in
// use), and the publish path through paho needs several kilobytes.
//
// The pool grows on demand, up to maxWorkers: a request that finds no idle worker starts
// one, so publishes waiting for QoS 1/2 acknowledgements do not queue behind each other. A
// worker that stays idle for workerIdle ends. close waits for every worker.
type workers struct {
	reqs chan *pubReq
	quit chan struct{}
	wg   sync.WaitGroup
	n    atomic.Int64 // workers running
}

// workerIdle is how long an idle worker waits for work before it ends.
const workerIdle = 2 * time.Second

// maxWorkers caps the pool. Without a cap, a stall (a collection with a million stacks to
// scan, a slow connection) made a new worker for every publish that came meanwhile: a
// million-device run grew 35,000 of them, 280 MB of stacks. Beyond the cap a publish waits
// for a worker; the wait shows as schedule lag, where it belongs.
const maxWorkers = 2048

func newWorkers() *workers {
	return &workers{reqs: make(chan *pubReq), quit: make(chan struct{})}
}

// A request goes to an idle worker through reqs, or, when none is idle, to a new one from
// start; either way the worker wakes the port with the outcome (see port.PublishAt).

// start starts a worker whose first request is r, or, when the pool is full, waits for a
// worker to take r.
func (w *workers) start(r *pubReq) {
	if w.n.Add(1) > maxWorkers {
		w.n.Add(-1)
		w.reqs <- r
		return
	}
	w.wg.Add(1)
	go w.work(r)
}

func (w *workers) work(first *pubReq) {
	defer w.wg.Done()
	defer w.n.Add(-1)
	first.run()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case r := <-w.reqs:
			r.run()
			idle.Reset(workerIdle)
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}

// close ends the idle workers and waits for the busy ones; no do may be running or start.
func (w *workers) close() {
	close(w.quit)
	w.wg.Wait()
}
