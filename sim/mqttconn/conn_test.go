package mqttconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/testbroker"
)

func TestDialRetriesUntilTheBrokerIsUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	late := make(chan *broker.Broker, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		b, err := broker.Start(broker.Options{Addr: addr})
		if err != nil {
			t.Error(err)
		}
		late <- b
	}()
	c, err := Dial(context.Background(), Options{Broker: "tcp://" + addr, ConnectTimeout: time.Second, RetryFor: 10 * time.Second}, "late")
	b := <-late
	if b != nil {
		defer b.Close()
	}
	if err != nil {
		t.Fatalf("Dial gave up on a broker that came up after 700 ms: %v", err)
	}
	c.Close()
}

func TestDialGivesUpWithinItsDeadline(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	begin := time.Now()
	_, err := Dial(context.Background(), Options{Broker: "tcp://" + addr, ConnectTimeout: time.Second, RetryFor: 500 * time.Millisecond}, "never")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("took %v to give up with a 500 ms deadline", took)
	}
}

func TestExplainClassifies(t *testing.T) {
	for _, c := range []struct {
		err          error
		class, cause error
		says         string
	}{
		{packets.ErrorRefusedBadUsernameOrPassword, ErrAuth, ErrLogin, "username or password"},
		{fmt.Errorf("%w : extra", packets.ErrorRefusedNotAuthorised), ErrAuth, ErrLogin, "username or password"},
		{packets.ErrorRefusedIDRejected, ErrAuth, nil, "client id"},
		{x509.UnknownAuthorityError{}, ErrTLS, ErrCertificate, "unknown authority"},
		{x509.HostnameError{Certificate: &x509.Certificate{}, Host: "example"}, ErrTLS, ErrCertificate, "not valid for this host"},
		{tls.RecordHeaderError{}, ErrTLS, nil, "did not answer with TLS"},
		{fmt.Errorf("%w within 1s", ErrNoAnswer), ErrUnreachable, ErrNoAnswer, "no answer in time"},
		{&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, ErrUnreachable, ErrNoAnswer, "no answer in time"},
	} {
		err := Explain("ssl://b:8883", c.err)
		if !errors.Is(err, c.class) || !errors.Is(err, c.err) {
			t.Errorf("Explain(%v) = %v: want class %v and the cause kept", c.err, err, c.class)
		}
		for _, cause := range []error{ErrLogin, ErrCertificate, ErrNoAnswer} {
			if errors.Is(err, cause) != (cause == c.cause) {
				t.Errorf("Explain(%v): errors.Is(%v) = %v", c.err, cause, !(cause == c.cause))
			}
		}
		msg := err.Error()
		if !strings.Contains(msg, c.says) || !strings.Contains(msg, "connect ssl://b:8883") {
			t.Errorf("Explain(%v) says %q, want it to mention %q", c.err, msg, c.says)
		}
		if strings.Contains(msg, "--") {
			t.Errorf("Explain(%v) says %q: the engine names no CLI flags", c.err, msg)
		}
	}
}

func TestSubackKeyFollowsPaho(t *testing.T) {
	for filter, want := range map[string]string{
		"t/#":                  "t/#",
		"$share/backend/t/#":   "t/#",
		"$share/g/$queue/x":    "x",
		"$queue/jobs/+":        "jobs/+",
		"$share/g":             "",
		"$SYS/broker/#":        "$SYS/broker/#",
		"$share/g/$share/h/x/": "$share/h/x/",
	} {
		if got := subackKey(filter); got != want {
			t.Errorf("subackKey(%q) = %q, want %q", filter, got, want)
		}
	}
}
