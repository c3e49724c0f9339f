package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/fleetsim/fleetsim/sim/scenario"
)

// spareFiles are the descriptors a run needs besides its connections: listeners, the
// metrics endpoint, the binary's own files, the runtime's poller.
const spareFiles = 64

// checkCapacity says before a run, rather than halfway through it, whether this process can
// open the conns connections it needs for scenario s (all of them, or its shard's): one
// file descriptor each (two with the embedded broker, which holds the other end), and one
// ephemeral port each per source address.
func checkCapacity(s *scenario.Scenario, conns int, embedded bool) error {
	need := conns + spareFiles
	if embedded {
		need += conns
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(need) > lim.Cur {
		how := fmt.Sprintf("raise the limit (ulimit -n %d; the hard limit here is %d)", need, lim.Max)
		if uint64(need) > lim.Max {
			how = fmt.Sprintf("the hard limit here is %d, so raise it (limits.conf, or systemd's LimitNOFILE) or use fewer connections (connections: per-home or {pool: N})", lim.Max)
		}
		whose := ""
		if embedded {
			whose = ", twice over with the embedded broker holding the other end"
		}
		return usagef("run: %d connections need about %d open files%s, but this process may open %d: %s", conns, need, whose, lim.Cur, how)
	}
	if lo, hi, ok := ephemeralPorts(); ok {
		ports := hi - lo + 1
		sources := max(len(s.Connections.SourceAddresses), 1)
		if conns > ports*sources {
			want := (conns + ports - 1) / ports
			return usagef("run: %d connections to one broker address need %d source addresses at %d ephemeral ports each (net.ipv4.ip_local_port_range %d %d), but the scenario gives %d: "+
				"set connections.source_addresses to at least %d addresses (every 127.0.0.x reaches loopback), e.g. [127.0.0.1, 127.0.0.2, ...]",
				conns, want, ports, lo, hi, sources, want)
		}
	}
	return nil
}

// ephemeralPorts reads the local port range the kernel picks client ports from.
func ephemeralPorts() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil && hi >= lo
}
