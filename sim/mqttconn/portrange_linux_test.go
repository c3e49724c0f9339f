package mqttconn

import (
	"context"
	"errors"
	"net"
	"net/url"
	"syscall"
	"testing"
)

// TestPlainDialerPortRange checks that a broker connection without a dialer of its own
// gets the per-socket port range that keeps connect(2) cheap at scale (portrange_linux.go).
func TestPlainDialerPortRange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u := &url.URL{Scheme: "tcp", Host: ln.Addr().String()}
	nc, err := OpenNet(context.Background(), Options{}, u)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, ipLocalPortRange)
	}); err != nil {
		t.Fatal(err)
	}
	if errors.Is(gerr, syscall.ENOPROTOOPT) {
		t.Skip("this kernel has no IP_LOCAL_PORT_RANGE (Linux 6.3 and later): nothing to check")
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if uint32(got) != wholePortRange { // the option is a packed uint32: high port << 16 | low port
		t.Errorf("IP_LOCAL_PORT_RANGE = %#x, want %#x", uint32(got), wholePortRange)
	}
}
