//go:build !linux

package mqttconn

import "net"

// plainDialer is the dialer of a broker connection with no dialer of its own
// (Options.NetDial). Only Linux's has something to add (portrange_linux.go).
var plainDialer = &net.Dialer{}
