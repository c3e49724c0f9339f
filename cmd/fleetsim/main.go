// Command fleetsim runs a simulated IoT device fleet over MQTT: a scenario file says which
// devices exist in how many homes, how they behave and how fast they publish; fleetsim runs
// one goroutine per device against an embedded broker or any real one, narrates what the
// devices do, serves Prometheus metrics and prints a summary at the end.
//
// This package is the only place that touches os.Args, os.Exit, the environment and signals.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
)

func main() {
	ctx, hard, stop := signalContext(os.Stderr)
	err := run(ctx, hard, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// signalContext returns two contexts. The first SIGINT or SIGTERM cancels ctx: the run stops
// starting new work and gives what is in flight a grace period. A second signal cancels
// hard, which cuts the grace period short: the run ends at once and still writes its
// summary and report. A third exits at once. stop releases the signal handler and its
// goroutine.
func signalContext(stderr io.Writer) (ctx, hard context.Context, stop func()) {
	hard, cutHard := context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-sigs:
			case <-done:
				return
			}
			switch i {
			case 0:
				fmt.Fprintln(stderr, "\nfleetsim: stopping: waiting for messages in flight, then the summary (Ctrl-C again to skip the wait)")
				cancel()
			case 1:
				fmt.Fprintln(stderr, "fleetsim: not waiting; writing the summary (Ctrl-C again to quit at once)")
				cutHard()
			default:
				fmt.Fprintln(stderr, "fleetsim: stopped at once")
				os.Exit(130)
			}
		}
	}()
	return ctx, hard, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
		cutHard()
	}
}

// Exit codes of runs that ended but did not pass. exitThresholds, for a run that crossed a
// threshold, is 99 as k6 uses, so a CI job can tell "the broker missed its targets" from
// "fleetsim could not run". exitGeneratorLimit, beside it, is a run whose generator was the
// limit: it did not measure the broker, whatever its thresholds say.
const (
	exitThresholds     = 99
	exitGeneratorLimit = 98
)

// usageError is a mistake in how fleetsim was called: bad flags, a bad argument, an
// invalid scenario. It exits with code 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode prints err (if any), with the flags that address it (withHint), and maps it
// to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "fleetsim: "+withHint(err).Error())
	var u usageError
	switch {
	case errors.As(err, &u):
		return 2
	case errors.Is(err, mqttconn.ErrUnreachable):
		return 3
	case errors.Is(err, mqttconn.ErrAuth):
		return 4
	case errors.Is(err, mqttconn.ErrTLS):
		return 5
	case errors.Is(err, runner.ErrThresholds):
		return exitThresholds
	case errors.Is(err, runner.ErrGeneratorLimit):
		return exitGeneratorLimit
	}
	return 1
}
