package main

import (
	"crypto/x509"
	"errors"
	"strings"
	"syscall"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// hinted is an error from the engine followed by what to do about it in fleetsim's own
// terms: the engine says what went wrong, and names no flags; the CLI knows its flags.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() + "; " + h.hint }
func (h hinted) Unwrap() error { return h.err }

// withHint adds to err the flags and environment variables that address it, when there
// are any; errors.Is and errors.As see through it.
func withHint(err error) error {
	var (
		hints     []string
		unknownCA x509.UnknownAuthorityError
		listen    *broker.ListenError
	)
	switch {
	case errors.Is(err, mqttconn.ErrLogin):
		hints = append(hints, "check --username or FLEETSIM_USERNAME, and FLEETSIM_PASSWORD or --password-file")
	case errors.Is(err, mqttconn.ErrTLS) && errors.As(err, &unknownCA):
		hints = append(hints, "give the broker's CA with --ca-file")
	case errors.Is(err, mqttconn.ErrNoAnswer):
		hints = append(hints, "on a slow link, raise --connect-timeout")
	case errors.Is(err, broker.ErrAnonymousOffLoopback):
		hints = append(hints, "give --broker-users FILE or --allow-anonymous")
	case errors.As(err, &listen) && errors.Is(err, syscall.EADDRINUSE):
		flag := "--listen"
		if listen.WebSocket {
			flag = "--ws-listen"
		}
		hints = append(hints, "use "+flag+" to pick another address")
	}
	if errors.Is(err, mqttconn.ErrCertificate) {
		hints = append(hints, "--insecure-skip-verify turns verification off, for testing only")
	}
	if len(hints) == 0 {
		return err
	}
	return hinted{err: err, hint: strings.Join(hints, "; ")}
}
