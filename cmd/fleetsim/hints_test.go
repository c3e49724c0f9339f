package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
)

// TestEngineErrorsGetFlagHints checks that what the user reads for an engine error names
// the flags that fix it, while the exit code still follows the engine's class.
func TestEngineErrorsGetFlagHints(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, inUse := broker.Start(broker.Options{Addr: taken.Addr().String()})
	_, wsInUse := broker.Start(broker.Options{Addr: "127.0.0.1:0", WSAddr: taken.Addr().String()})
	_, open := broker.Start(broker.Options{Addr: "0.0.0.0:0"})
	for _, c := range []struct {
		name string
		err  error
		code int
		says []string
	}{
		{"wrong password", mqttconn.Explain("tcp://b:1883", packets.ErrorRefusedNotAuthorised), 4,
			[]string{"the broker refused the username or password", "check --username or FLEETSIM_USERNAME, and FLEETSIM_PASSWORD or --password-file"}},
		{"client id rejected", mqttconn.Explain("tcp://b:1883", packets.ErrorRefusedIDRejected), 4, []string{"client id"}},
		{"unknown CA", mqttconn.Explain("ssl://b:8883", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{})), 5,
			[]string{"unknown authority", "--ca-file", "--insecure-skip-verify turns verification off, for testing only"}},
		{"wrong host", mqttconn.Explain("ssl://b:8883", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "b"}), 5,
			[]string{"not valid for this host", "--insecure-skip-verify"}},
		{"no answer", fmt.Errorf("run: %w", mqttconn.Explain("tcp://b:1883", fmt.Errorf("%w within 1s", mqttconn.ErrNoAnswer))), 3,
			[]string{"no answer in time", "raise --connect-timeout"}},
		{"refused", mqttconn.Explain("tcp://b:1883", syscall.ECONNREFUSED), 3, []string{"connection refused"}},
		{"listen address in use", inUse, 1, []string{"address already in use", "use --listen "}},
		{"websocket address in use", wsInUse, 1, []string{"address already in use", "use --ws-listen "}},
		{"anonymous off loopback", open, 1, []string{"anyone on the network", "give --broker-users FILE or --allow-anonymous"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil {
				t.Fatal("no error to hint at")
			}
			var out strings.Builder
			if code := exitCode(c.err, &out); code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			msg := out.String()
			if !strings.HasPrefix(msg, "fleetsim: "+c.err.Error()) {
				t.Errorf("message %q does not start with the engine's %q", msg, c.err)
			}
			for _, want := range c.says {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if strings.Count(msg, "\n") != 1 {
				t.Errorf("message %q is not one line", msg)
			}
		})
	}
	plain := errors.New("something else")
	if got := withHint(plain); got != plain {
		t.Errorf("withHint(%v) = %v, want it unchanged", plain, got)
	}
}
