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
)

func main() {
	ctx, stop := signalContext(os.Stderr)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM; a second one
// exits at once. stop releases the signal handler and its goroutine.
func signalContext(stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "\nfleetsim: stopping and writing the summary (Ctrl-C again to stop at once)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "fleetsim: stopped at once")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// usageError is a mistake in how fleetsim was called: bad flags, a bad argument, an
// invalid scenario. It exits with code 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode prints err (if any) and maps it to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "fleetsim: "+err.Error())
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
	}
	return 1
}
