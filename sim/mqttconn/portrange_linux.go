package mqttconn

import (
	"net"
	"syscall"
)

// ipLocalPortRange is Linux's IP_LOCAL_PORT_RANGE socket option (since 6.3); syscall does
// not name it.
const ipLocalPortRange = 51

// wholePortRange asks for ports 1 to 65535, which the kernel narrows to the system's
// ephemeral range (net.ipv4.ip_local_port_range): the same ports as without it.
const wholePortRange = 65535<<16 | 1

// plainDialer is the dialer of a broker connection with no dialer of its own
// (Options.NetDial). It gives each socket its own local port range, the system's whole one.
//
// Why: without a range of its own, connect(2) picks an ephemeral port by scanning the
// ports of one parity first (even ones, leaving odd ones to bind(2)), and checks each used
// one against the established table. Once a fleet has taken every even port towards one
// broker (about 14,000 in the default range), every further connect scans all of them
// before it tries an odd one: with 20,000 per-device connections to one mosquitto on 2
// cores, __inet_check_established and __inet_hash_connect were a third of the machine's
// CPU, connect(2) 3.5 of fleetsim's 4.9 CPU-seconds of dialing, and the last 6,000
// connections took 10 times as long each as the first (BenchmarkConnectionsLean with
// -fleetsim.full). A socket with a range of its own is scanned one port at a time from
// where the last connect stopped, so connects stay as cheap at 20,000 as at 2,000. A kernel
// without the option (before 6.3) refuses it; the socket then dials as it always did.
var plainDialer = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		// An error (ENOPROTOOPT before Linux 6.3, or a socket that is not IPv4 or
		// IPv6) only means the kernel picks the port the usual way.
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipLocalPortRange, wholePortRange)
	})
}}
