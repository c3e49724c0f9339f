// Package testbroker runs a real mosquitto broker for tests: on loopback, on free ports,
// optionally with a TLS listener (certificates made by NewTestCA), password authentication,
// persistence and the limits a test needs (queued and in-flight messages, connections),
// and stopped when the test ends. A test can also stop it and start it again on the same
// ports (Restart), or freeze it to see a broker that hangs; Usage reports its CPU time and
// memory for benchmarks. StartProxy (proxy.go) puts a fault-injecting MQTT proxy in front
// of any broker: delay, drop, duplicate, swap, pause and cut, with exact counts of what it
// did.
//
// mosquitto comes from the Debian packages "mosquitto" (the broker and mosquitto_passwd)
// and "mosquitto-clients" (mosquitto_sub, mosquitto_pub), which `make deps` installs. A
// test that needs a missing tool is skipped, or fails under CI (CI=true); see RequireTool.
package testbroker

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sbinDirs are searched after $PATH: mosquitto installs the broker in /usr/sbin, which is
// not on the PATH of ordinary users.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// debPackage names the Debian package that provides each tool.
var debPackage = map[string]string{
	"mosquitto":        "mosquitto",
	"mosquitto_passwd": "mosquitto",
	"mosquitto_sub":    "mosquitto-clients",
	"mosquitto_pub":    "mosquitto-clients",
	"mosquitto_rr":     "mosquitto-clients",
	"prometheus":       "prometheus", // for cmd/fleetsim's dashboard test
	"promtool":         "prometheus",
	"chromium":         "chromium", // for cmd/fleetsim's classroom view test
}

// RequireTool returns the path of the executable name, looked up on $PATH and then in
// /usr/sbin, /usr/local/sbin and /sbin. When it is missing the test is skipped, or, when
// the environment has CI=true, fails: CI installs the tools, so there a missing one is a
// broken setup, not an optional test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range sbinDirs {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return path
		}
	}
	pkg := debPackage[name]
	if pkg == "" {
		pkg = name
	}
	msg := fmt.Sprintf("%s not found on $PATH or in %s: install the Debian package %q "+
		"(apt-get install %s) or run `make deps`", name, strings.Join(sbinDirs, ", "), pkg, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this fails instead of skipping)", msg)
	} else {
		t.Skipf("skipping: %s", msg)
	}
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it listens on port 0
// and closes the listener. Another process may take the port before the caller binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Config configures StartMosquitto. The zero value is one plain listener that allows
// anonymous clients.
type Config struct {
	// TLS, if set, adds a TLS listener using these files (see NewTestCA).
	TLS *TLSFiles
	// RequireClientCert makes the TLS listener require a client certificate signed by
	// TLS.CA (mutual TLS; see NewClientCert).
	RequireClientCert bool
	// Users, if not empty, maps user names to passwords; clients must then give one of
	// them, on every listener (anonymous clients are refused).
	Users map[string]string
	// Persistence makes mosquitto keep persistent sessions (their subscriptions and queued
	// QoS 1 and 2 messages, in flight or not) and retained messages across Restart: it
	// writes its database in the test's temporary directory when it stops (Stop sends
	// SIGTERM) and reads it when it starts again. Without it nothing survives a restart.
	Persistence bool

	// Limits (mosquitto.conf(5)); zero keeps the value noted. set_tcp_nodelay is always on:
	// without it QoS 1 with many messages in flight stalls on delayed ACKs (DESIGN.md §7).
	//
	// MaxQueuedMessages is how many messages mosquitto queues for a client beyond those in
	// flight before it drops new ones (max_queued_messages; 0: 100000, where mosquitto's
	// own default of 1000 would drop the bursts of a simulated fleet).
	MaxQueuedMessages int
	// MaxInflightMessages is how many QoS 1 and 2 messages mosquitto has in flight to each
	// client at once (max_inflight_messages; 0: mosquitto's default, 20).
	MaxInflightMessages int
	// MaxConnections caps the clients each listener accepts (max_connections; 0: no cap).
	// mosquitto 2.0.11 lets a connection that closes before its CONNECT (such as the probe
	// StartMosquitto makes to see the listener is up) lower its count twice, so the cap
	// admits one client more than set.
	MaxConnections int
	// SysInterval is how often, in seconds, mosquitto publishes its $SYS counters
	// (sys_interval; 0: mosquitto's default, 10).
	SysInterval int
}

// Mosquitto is a running mosquitto process.
type Mosquitto struct {
	Addr     string // plain listener, "127.0.0.1:port"
	TLSAddr  string // TLS listener, "127.0.0.1:port", or "" without Config.TLS
	ConfPath string // the generated mosquitto.conf
	LogPath  string // mosquitto's log, and its standard output and error

	bin string // the mosquitto executable

	mu     sync.Mutex    // guards cmd and exited, which Start replaces
	cmd    *exec.Cmd     // the current (or last) process
	exited chan struct{} // closed when that process has exited
}

// URL is the plain listener's URL, "tcp://127.0.0.1:port".
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr }

// TLSURL is the TLS listener's URL, "ssl://127.0.0.1:port", or "" without TLS.
func (m *Mosquitto) TLSURL() string {
	if m.TLSAddr == "" {
		return ""
	}
	return "ssl://" + m.TLSAddr
}

// Log returns mosquitto's log so far.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// startTimeout bounds the wait for mosquitto's listeners to accept connections.
const startTimeout = 5 * time.Second

// StartMosquitto starts mosquitto with a configuration written from cfg into a temporary
// directory, waits until its listeners accept TCP connections and stops it when the test
// ends. It skips or fails the test as RequireTool does when mosquitto is not installed, and
// fails it, printing mosquitto's log, when mosquitto does not start within 5 seconds.
func StartMosquitto(t testing.TB, cfg Config) *Mosquitto {
	t.Helper()
	bin := RequireTool(t, "mosquitto")
	dir := t.TempDir()
	passwd := ""
	if len(cfg.Users) > 0 {
		passwd = writePasswords(t, dir, cfg.Users)
	}
	// The ports are free when chosen but only bound when mosquitto starts; if another
	// process takes one in between, try again with new ports.
	const attempts = 3
	for i := 1; ; i++ {
		m, inUse, err := startMosquitto(t, bin, dir, passwd, cfg)
		switch {
		case err == nil:
			return m
		case inUse && i < attempts:
			t.Logf("%v; retrying with other ports", err)
		default:
			t.Fatal(err)
		}
	}
}

// startMosquitto makes one attempt. inUse tells whether an error was a port in use.
func startMosquitto(t testing.TB, bin, dir, passwd string, cfg Config) (m *Mosquitto, inUse bool, err error) {
	t.Helper()
	m = &Mosquitto{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		ConfPath: filepath.Join(dir, "mosquitto.conf"),
		LogPath:  filepath.Join(dir, "mosquitto.log"),
		bin:      bin,
	}
	if cfg.TLS != nil {
		m.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	}
	if err := os.WriteFile(m.ConfPath, []byte(m.config(cfg, passwd, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.LogPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inUse, err = m.launch()
	if m.cmd != nil {
		t.Cleanup(m.Stop)
	}
	return m, inUse, err
}

// launch starts the mosquitto process and waits until its listeners accept TCP
// connections. inUse tells whether an error was a port in use.
func (m *Mosquitto) launch() (inUse bool, err error) {
	logFile, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(m.bin, "-c", m.ConfPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start %s: %w", m.bin, err)
	}
	exited := make(chan struct{})
	go func() { // ends when the process exits; Stop, or the test's end, sees to that
		_ = cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()

	addrs := []string{m.Addr}
	if m.TLSAddr != "" {
		addrs = append(addrs, m.TLSAddr)
	}
	deadline := time.Now().Add(startTimeout)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				log := m.Log()
				return strings.Contains(log, "Address already in use"),
					fmt.Errorf("mosquitto exited at start (%v); config %s; log:\n%s", cmd.ProcessState, m.ConfPath, log)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				m.Stop()
				return false, fmt.Errorf("mosquitto not accepting on %s after %v; config %s; log:\n%s",
					addr, startTimeout, m.ConfPath, m.Log())
			}
		}
	}
	return false, nil
}

// Start starts a stopped mosquitto again, with the same configuration on the same ports
// (with Config.Persistence, from the database it wrote when it stopped), and waits until
// its listeners accept connections. Its log goes on in the same file. It fails if
// mosquitto is running, or if it does not start within 5 seconds; a port that another
// process took while mosquitto was stopped is retried until then.
func (m *Mosquitto) Start() error {
	if m.running() {
		return fmt.Errorf("mosquitto on %s is already running", m.Addr)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		inUse, err := m.launch()
		if err == nil || !inUse || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops mosquitto (as Stop does) and starts it again (as Start does). Its clients
// lose their connections; with Config.Persistence their persistent sessions survive.
func (m *Mosquitto) Restart() error {
	m.Stop()
	return m.Start()
}

// running reports whether the current mosquitto process has not exited.
func (m *Mosquitto) running() bool {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Freeze stops mosquitto's process in its tracks (SIGSTOP) until Thaw: its sockets stay
// open and the kernel still accepts connections and data, but nothing is answered: a
// broker that hangs. Stop thaws it.
func (m *Mosquitto) Freeze() error { return m.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen mosquitto (SIGCONT).
func (m *Mosquitto) Thaw() error { return m.signal(syscall.SIGCONT) }

func (m *Mosquitto) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("mosquitto on %s: %v: %w", m.Addr, sig, err)
	}
	return nil
}

// config renders mosquitto.conf (see mosquitto.conf(5), mosquitto 2.0).
func (m *Mosquitto) config(cfg Config, passwd, dir string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# Written by fleetsim's testbroker for one test.")
	if os.Geteuid() == 0 {
		// Run as root, mosquitto switches to the user "mosquitto", which cannot read
		// this test's temporary directory.
		line("user root")
	}
	if cfg.Persistence {
		line("persistence true")
		line("persistence_location %s/", dir)
	} else {
		line("persistence false")
	}
	line("log_dest file %s", m.LogPath)
	line("log_type error")
	line("log_type warning")
	line("log_type notice")
	line("log_type information")
	line("connection_messages true")
	line("log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S")
	line("set_tcp_nodelay true")
	queued := cfg.MaxQueuedMessages
	if queued <= 0 {
		queued = 100000
	}
	line("max_queued_messages %d", queued)
	if cfg.MaxInflightMessages > 0 {
		line("max_inflight_messages %d", cfg.MaxInflightMessages)
	}
	if cfg.SysInterval > 0 {
		line("sys_interval %d", cfg.SysInterval)
	}
	if passwd != "" {
		line("allow_anonymous false")
		line("password_file %s", passwd)
	} else {
		line("allow_anonymous true")
	}

	maxConns := -1
	if cfg.MaxConnections > 0 {
		maxConns = cfg.MaxConnections
	}
	host, port, _ := net.SplitHostPort(m.Addr)
	line("listener %s %s", port, host)
	line("max_connections %d", maxConns)
	if cfg.TLS != nil {
		host, port, _ := net.SplitHostPort(m.TLSAddr)
		line("listener %s %s", port, host)
		line("max_connections %d", maxConns)
		line("cafile %s", cfg.TLS.CA)
		line("certfile %s", cfg.TLS.Cert)
		line("keyfile %s", cfg.TLS.Key)
		line("require_certificate %t", cfg.RequireClientCert)
	}
	return b.String()
}

// writePasswords creates a mosquitto password file for users with mosquitto_passwd.
func writePasswords(t testing.TB, dir string, users map[string]string) string {
	t.Helper()
	bin := RequireTool(t, "mosquitto_passwd")
	path := filepath.Join(dir, "passwd")
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		args := []string{"-b", path, name, users[name]} // -b: password on the command line
		if i == 0 {
			args = append([]string{"-c"}, args...) // -c: create the file
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("mosquitto_passwd for user %q: %v\n%s", name, err, out.String())
		}
	}
	return path
}

// Usage is what a process has used so far.
type Usage struct {
	CPU time.Duration // user + system CPU time
	RSS int64         // resident memory, bytes
}

// Usage returns mosquitto's CPU time and resident memory so far, for benchmarks that
// account for the broker's share of a run (Linux only: it reads /proc).
func (m *Mosquitto) Usage() (Usage, error) { return usage(m.cmd.Process.Pid) }

// Stop stops mosquitto (SIGTERM, then SIGKILL after 5 seconds) and waits for it to exit.
// It is called when the test ends; tests may call it earlier, for example to see clients
// lose their connection, and Start it again. It is safe to call more than once.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen process acts on SIGTERM once thawed
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// TCPPair returns the two ends of a loopback TCP connection, for tests of what wraps or
// reads a connection; the caller closes them.
func TCPPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		client.Close()
		t.Fatal("accept failed")
	}
	return client, server
}
