package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/broker"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/metrics"
	"github.com/fleetsim/fleetsim/sim/mqttconn"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// runFlags are the flags of `fleetsim run`.
type runFlags struct {
	broker, listen, wsListen, metricsAddr string
	duration, day                         optionalDuration
	connectTimeout, connectRetryFor       time.Duration
	seed                                  optionalUint
	username, passwordFile                string
	brokerUsers                           string
	allowAnonymous                        bool
	caFile, certFile, keyFile             string
	insecure, quiet, verbose              bool
	progress, grace, wakeBatch            time.Duration
	reconnectBase, reconnectCap           time.Duration
	report                                string
	thresholds                            stringList
	allowGeneratorLimit                   bool
	grafanaURL                            string
	sharding                              shardFlags
	ui                                    string
	uiSet                                 bool // --ui was given
	client, protocol                      string
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// optionalDuration is a duration flag that knows whether it was set, so that its help
// shows no default when the scenario gives it.
type optionalDuration struct {
	set bool
	v   time.Duration
}

func (o *optionalDuration) String() string {
	if !o.set {
		return ""
	}
	return o.v.String()
}

func (o *optionalDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 90s or 5m")
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	o.set, o.v = true, v
	return nil
}

// optionalUint is a uint64 flag that knows whether it was set.
type optionalUint struct {
	set bool
	v   uint64
}

func (o *optionalUint) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatUint(o.v, 10)
}

func (o *optionalUint) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want a whole number ≥ 0")
	}
	o.set, o.v = true, v
	return nil
}

const runSynopsis = `Runs a scenario. Without --broker (and with broker: embedded in the scenario) fleetsim starts
its own MQTT broker on --listen, so any MQTT client can watch and join:
  mosquitto_sub -h 127.0.0.1 -t '#' -v
Devices narrate what they do on stdout; the summary (and --report) follows when the run ends
or on Ctrl-C, after waiting up to --grace for messages in flight (a second Ctrl-C skips the
wait, a third quits at once). Metrics are served at http://--metrics-addr/metrics.

Credentials never go on the command line: the username comes from --username or
FLEETSIM_USERNAME, the password only from FLEETSIM_PASSWORD or --password-file.

For 100,000 devices or more fleetsim sets GOGC=25 and at least 4 Ps, unless the environment
sets them; GOMEMLIMIT caps its memory, and GODEBUG=adaptivestackstart=0 keeps every device's
stack at 2 KiB (README, "Scale", has the million-device command).`

const runExample = `  fleetsim run scenarios/smart-home.yaml
  fleetsim run scenarios/smart-home.yaml --day 1m --duration 1m
  fleetsim run scenarios/broker-load.yaml --broker tcp://127.0.0.1:1883 --quiet \
      --threshold 'latency_p99<50ms' --threshold 'loss==0' --report out.json
  fleetsim run scenarios/temperature.yaml --broker tcp://127.0.0.1:1883
  FLEETSIM_PASSWORD=secret fleetsim run scenarios/encyclopedia.yaml \
      --broker ssl://broker.example:8883 --username me --ca-file ca.pem`

func parseRunFlags(args []string, stdout io.Writer) (*runFlags, string, error) {
	f := &runFlags{}
	fs := newFlagSet("run", runSynopsis, runExample, stdout)
	fs.StringVar(&f.broker, "broker", "", "broker URL (tcp://, ssl://, ws://, wss://), or \"embedded\"; overrides the scenario's broker")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:1883", "address of the embedded broker's MQTT listener")
	fs.StringVar(&f.wsListen, "ws-listen", "", "address of the embedded broker's MQTT-over-WebSocket listener (off when empty)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address to serve /metrics on; \"off\" to disable")
	fs.Var(&f.duration, "duration", "how long to run (a `duration` such as 90s or 5m), overriding the scenario's duration (0 = until Ctrl-C)")
	fs.Var(&f.day, "day", "wall time (a `duration`) of one simulated day, overriding the scenario's day")
	fs.Var(&f.seed, "seed", "seed for every random choice, overriding the scenario's seed")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "how long one connection attempt may take")
	fs.DurationVar(&f.connectRetryFor, "connect-retry-for", 15*time.Second, "how long to keep retrying, with backoff, a broker that cannot be reached at the start (0: try once)")
	fs.DurationVar(&f.reconnectBase, "reconnect-base", 100*time.Millisecond, "after a lost connection, the first reconnect waits up to this (full jitter), doubling each attempt")
	fs.DurationVar(&f.reconnectCap, "reconnect-cap", 10*time.Second, "the most a reconnect waits; a larger cap spreads a reconnect storm over more time")
	fs.StringVar(&f.username, "username", "", "MQTT username (default $FLEETSIM_USERNAME)")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the MQTT password (default: $FLEETSIM_PASSWORD)")
	fs.StringVar(&f.brokerUsers, "broker-users", "", "file of the embedded broker's users, one name:password or name:password:teacher a line; students may write only students/<name>/# and device command topics")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "let the embedded broker accept anyone without --broker-users even when --listen or --ws-listen is not loopback")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of the CA(s) that sign the broker's certificate (default: system roots)")
	fs.StringVar(&f.certFile, "cert-file", "", "PEM client certificate, for mutual TLS (with --key-file)")
	fs.StringVar(&f.keyFile, "key-file", "", "PEM client key, for mutual TLS (with --cert-file)")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the broker's TLS certificate (testing only)")
	fs.BoolVar(&f.quiet, "quiet", false, "do not narrate device events (progress lines go to stderr instead)")
	fs.DurationVar(&f.progress, "progress", 0, "print a progress line on stderr this often (default 10s with --quiet, else off)")
	fs.BoolVar(&f.verbose, "verbose", false, "also show rejected payloads and other detail on stderr")
	fs.StringVar(&f.report, "report", "", "write the end-of-run report as JSON to this file (\"-\" for stdout, on one line, last); see README, \"The JSON report\"")
	fs.Var(&f.thresholds, "threshold", "a pass/fail condition on the result, e.g. 'latency_p99<50ms' or 'loss==0' (repeatable; added to the scenario's thresholds); exit code 99 when one fails")
	fs.BoolVar(&f.allowGeneratorLimit, "allow-generator-limit", false, "pass a run whose generator, not the broker, was the limit (it fell behind its schedules, shed load or starved its own receivers) on its thresholds alone, instead of exit code 98; the report still says so")
	fs.StringVar(&f.grafanaURL, "grafana-url", "", "Grafana base `URL` to mark the run on: an annotation when it starts, for each threshold crossed, and when it ends with its verdict (token from $FLEETSIM_GRAFANA_TOKEN; a failing Grafana is a warning)")
	fs.DurationVar(&f.grace, "grace", runner.DefaultGrace, "when the run stops, how long to wait for publishes in flight and messages on their way before counting what is missing as lost")
	fs.StringVar(&f.sharding.shard, "shard", "", "run only shard `I/N` of the fleet, by home (default $FLEETSIM_SHARD, or $JOB_COMPLETION_INDEX+1 of $FLEETSIM_SHARDS); merge the reports with fleetsim merge")
	fs.StringVar(&f.sharding.startAt, "start-at", "", "start the schedules at this RFC 3339 `time` (the devices start a second ahead, once connected), so the shards of a run start together (default $FLEETSIM_START_AT)")
	fs.StringVar(&f.ui, "ui", defaultUI, "address of the classroom view (a web page of the devices, the broker and every message; README, \"The classroom view\"); \"off\" to disable. A busy default is skipped with a warning")
	fs.StringVar(&f.client, "client", "", "MQTT client for the connections: paho (the reference) or lean (fleetsim's own, made for load); overrides the scenario's connections.client (default lean)")
	fs.StringVar(&f.protocol, "protocol", "", "MQTT version the connections speak: 3.1.1 or 5 (lean client only); overrides the scenario's connections.protocol (default 3.1.1)")
	fs.DurationVar(&f.wakeBatch, "wake-batch", runner.DefaultWakeBatch, "wake the devices due to send within each slot of this `duration` together, at its start: sends go out up to this much early (measured from when they left), and a fleet sending thousands of messages a second uses less than half the CPU; 0 wakes each device at its own time")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, "", err
	}
	fs.Visit(func(fl *flag.Flag) { f.uiSet = f.uiSet || fl.Name == "ui" })
	if f.client != "" && !slices.Contains(scenario.Clients, f.client) {
		return nil, "", usagef("run: --client: want paho or lean, got %q", f.client)
	}
	if f.protocol != "" && f.protocol != scenario.Protocol311 && f.protocol != scenario.Protocol5 {
		return nil, "", usagef("run: --protocol: want 3.1.1 or 5, got %q", f.protocol)
	}
	if f.protocol == scenario.Protocol5 && f.client == scenario.ClientPaho {
		return nil, "", usagef("run: --protocol 5 needs --client lean (paho speaks 3.1.1 here)")
	}
	if len(pos) != 1 {
		return nil, "", usagef("run: want exactly one scenario file, got %d (see fleetsim help run)", len(pos))
	}
	if f.progress < 0 {
		return nil, "", usagef("run: --progress must not be negative")
	}
	if f.wakeBatch < 0 {
		return nil, "", usagef("run: --wake-batch must not be negative")
	}
	if f.grace <= 0 {
		return nil, "", usagef("run: --grace must be positive")
	}
	for _, t := range f.thresholds {
		if _, err := measure.Parse(t); err != nil {
			return nil, "", usagef("run: --threshold: %v", err)
		}
	}
	if f.connectTimeout <= 0 {
		return nil, "", usagef("run: --connect-timeout must be positive")
	}
	if f.reconnectBase <= 0 || f.reconnectCap < f.reconnectBase {
		return nil, "", usagef("run: --reconnect-base must be positive and --reconnect-cap at least as large")
	}
	if f.connectRetryFor < 0 {
		return nil, "", usagef("run: --connect-retry-for must not be negative")
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, "", usagef("run: --cert-file and --key-file go together")
	}
	return f, pos[0], nil
}

// runCommand is `fleetsim run`: ctx and hard are run's.
func runCommand(ctx, hard context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	f, file, err := parseRunFlags(args, stdout)
	if err != nil {
		return err
	}
	s, err := scenario.LoadWith(file, devices.Kinds(), overrides(f))
	var problems *scenario.Errors
	if errors.As(err, &problems) {
		// One "file:line: message" per line, unprefixed, so editors can jump to them.
		return usageError{fmt.Errorf("invalid scenario (fleetsim validate %s checks it without running):\n%w", file, err)}
	}
	if err != nil {
		return usageError{err}
	}
	shard, startAt, err := shardConfig(f.sharding, getenv)
	if err != nil {
		return err
	}
	skew, err := clockSkew(getenv)
	if err != nil {
		return err
	}
	if err := runner.CheckShard(s, shard); err != nil {
		return usagef("run: %v", err)
	}
	shardDevices, shardConns := shard.Size(s)
	if err := checkCapacity(s, shardConns, s.Broker == scenario.Embedded); err != nil {
		return err
	}
	if did := tuneRuntime(shardDevices, runner.Config{Scenario: s, Client: f.client, Protocol: f.protocol}.MQTTClient(), getenv); did != "" {
		fmt.Fprintln(stderr, "fleetsim: "+did)
	}

	connOpts, err := connectionOptions(s.Broker, f, getenv)
	if err != nil {
		return err
	}
	reg, m := newRegistry(s.Name)
	var users map[string]broker.User
	var brokerDropped func() int64 // the embedded broker's drops, nil with an external broker
	if f.brokerUsers != "" {
		if s.Broker != scenario.Embedded {
			return usagef("run: --broker-users is for the embedded broker, but the broker is %s", s.Broker)
		}
		if users, err = readUsers(f.brokerUsers); err != nil {
			return err
		}
	}
	ui, err := startView(f, s, shardDevices, users, reg, stderr) // nil without a classroom view
	if err != nil {
		return err
	}
	defer ui.close()
	if s.Broker == scenario.Embedded {
		b, err := broker.Start(broker.Options{Addr: f.listen, WSAddr: f.wsListen, Users: users, AllowAnonymousOffLoopback: f.allowAnonymous,
			Observer: ui.brokerObserver()})
		if err != nil {
			return err
		}
		defer b.Close()
		metrics.RegisterBroker(reg, embeddedStats{b})
		brokerDropped = func() int64 { return embeddedStats{b}.BrokerStats().MessagesDropped } // the same drops the metrics count
		connOpts.Broker = b.URL()
		if user, password := b.InternalCredentials(); user != "" {
			connOpts.Username, connOpts.Password = user, password
			fmt.Fprintln(stderr, describeUsers(users))
		}
		host, port, _ := net.SplitHostPort(b.Addr())
		fmt.Fprintf(stderr, "fleetsim: embedded MQTT broker on %s", b.URL())
		if f.wsListen != "" {
			fmt.Fprintf(stderr, " and %s", b.WSURL())
		}
		login := ""
		if users != nil {
			login = " -u NAME -P PASSWORD"
		}
		fmt.Fprintf(stderr, "\nfleetsim: watch it with: mosquitto_sub -h %s -p %s%s -t '#' -v\n", host, port, login)
		if err := ui.serve(f, b, users, connOpts, stderr); err != nil {
			return err
		}
	} else if err := ui.serveExternal(ctx, f, watchFilter(s.TopicPrefix), connOpts, stderr); err != nil {
		return err
	}

	if f.metricsAddr != "off" && f.metricsAddr != "" {
		stopMetrics, addr, err := serveMetrics(f.metricsAddr, reg)
		if err != nil {
			return err
		}
		defer stopMetrics()
		fmt.Fprintf(stderr, "fleetsim: metrics on http://%s/metrics\n", addr)
	}

	fmt.Fprintln(stderr, describe(s, connOpts.Broker))
	thresholds := append([]measure.Threshold(nil), s.Thresholds...)
	for _, t := range f.thresholds {
		th, _ := measure.Parse(t) // checked with the flags
		thresholds = append(thresholds, th)
	}
	cfg := runner.Config{Scenario: s, Kinds: devices.Kinds(), Conn: connOpts, Metrics: m, Console: stdout,
		Grace: f.grace, Hard: hard, Thresholds: thresholds, AllowGeneratorLimit: f.allowGeneratorLimit,
		BrokerDropped: brokerDropped, Shard: shard, StartAt: startAt, ClockSkew: skew, Observer: ui.runObserver(),
		Client: f.client, Protocol: f.protocol, WakeBatch: cmp.Or(f.wakeBatch, -1)}
	if !startAt.IsZero() || shard.Count > 1 {
		cfg.RunID = runner.RunID(s.Name, s.Seed, startAt) // the same in every shard
	}
	if shard.Count > 0 {
		fmt.Fprintf(stderr, "fleetsim: shard %s: %d device(s) on %d connection(s), homes h with (h-1) mod %d = %d; client ids fleetsim-%s-n\n",
			shard, shardDevices, shardConns, shard.Count, shard.Index-1, cmp.Or(cfg.RunID, "RANDOM"))
	}
	if f.quiet {
		cfg.Console = nil
		if f.progress == 0 {
			f.progress = 10 * time.Second
		}
	}
	if f.progress > 0 {
		cfg.Progress, cfg.ProgressEvery = stderr, f.progress
		cfg.ProgressInPlace = isTerminal(stderr)
	}
	if f.verbose {
		cfg.Debug = stderr
	}
	ann, err := startAnnotations(f.grafanaURL, s, getenv, stderr)
	if err != nil {
		return err
	}
	defer ann.close()
	sum, err := runner.Run(ctx, cfg)
	ann.end(sum, err)
	if sum != nil {
		sum.Print(stdout)
		if f.report != "" {
			if rerr := writeReport(f.report, sum, stdout); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
	}
	return err
}

// writeReport writes the JSON report to file ("-" for w), replacing the file only once the
// whole report is written, so a failed write never leaves half a report behind.
func writeReport(file string, sum *runner.Summary, w io.Writer) error {
	if file == "-" {
		return writeReportLine(sum, w)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".fleetsim-report-*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := sum.WriteJSON(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("report %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// writeReportLine writes the report to w as one line of JSON, last: a pod's log is
// stdout and stderr mixed, and the collect step (README, "Running on Kubernetes") takes
// the line that starts {"schema":"fleetsim.report/.
func writeReportLine(sum *runner.Summary, w io.Writer) error {
	var b, line bytes.Buffer
	if err := sum.WriteJSON(&b); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := json.Compact(&line, b.Bytes()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	line.WriteByte('\n')
	_, err := w.Write(line.Bytes())
	return err
}

// isTerminal reports whether w is a terminal (a character device), where one progress line
// can be rewritten in place; anything else (a file, a pipe, CI's log) gets plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// readUsers reads a --broker-users file: lines "name:password" or "name:password:teacher",
// with blank lines and lines starting with '#' ignored. A password may hold ':' but not end
// in ":teacher". Errors name file:line and never quote a password.
func readUsers(file string) (map[string]broker.User, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("run: --broker-users: %v", err)
	}
	users := map[string]broker.User{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, password, ok := strings.Cut(line, ":")
		if !ok {
			return nil, usagef("%s:%d: want name:password or name:password:teacher", file, i+1)
		}
		var u broker.User
		if p, isTeacher := strings.CutSuffix(password, ":teacher"); isTeacher {
			password, u.Teacher = p, true
		}
		if err := broker.ValidUsername(name); err != nil {
			return nil, usagef("%s:%d: %v", file, i+1, err)
		}
		if password == "" {
			return nil, usagef("%s:%d: user %s has an empty password", file, i+1, name)
		}
		if _, dup := users[name]; dup {
			return nil, usagef("%s:%d: user %s is listed twice", file, i+1, name)
		}
		u.Password = password
		users[name] = u
	}
	if len(users) == 0 {
		return nil, usagef("run: --broker-users %s lists no users", file)
	}
	return users, nil
}

// describeUsers says who may log in to the embedded broker and what students may write,
// without passwords.
func describeUsers(users map[string]broker.User) string {
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("fleetsim: embedded broker users:")
	for i, name := range names {
		role := "student"
		if users[name].Teacher {
			role = "teacher"
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s (%s)", name, role)
	}
	fmt.Fprintf(&b, "\nfleetsim: everyone may read every topic; teachers may write any topic, students only students/<name>/# and device command topics (%s)",
		strings.Join(broker.CommandFilters, ", "))
	return b.String()
}

// overrides are the scenario values the command line replaces. The scenario checks them
// by its own rules, naming the flag in any problem ("--day: ...").
func overrides(f *runFlags) scenario.Overrides {
	return scenarioOverrides(f.broker, &f.duration, &f.day, &f.seed)
}

// scenarioOverrides are the overrides of the flags run and kubernetes share: only those set.
func scenarioOverrides(broker string, duration, day *optionalDuration, seed *optionalUint) scenario.Overrides {
	o := scenario.Overrides{Broker: broker}
	if duration.set {
		o.Duration = &duration.v
	}
	if day.set {
		o.Day = &day.v
	}
	if seed.set {
		o.Seed = &seed.v
	}
	return o
}

// describe is the line that says what is about to run.
func describe(s *scenario.Scenario, broker string) string {
	how := "until Ctrl-C"
	if s.Duration > 0 {
		how = "for " + s.Duration.String()
	}
	day := ""
	if s.Day > 0 {
		day = fmt.Sprintf(", a simulated day every %v", s.Day)
	}
	return fmt.Sprintf("fleetsim: running %s %s: %d device(s) in %d home(s), %d %s connection(s) to %s%s, seed %d",
		s.Name, how, s.DeviceCount(), s.Homes, s.ConnectionCount(), s.Connections.Mode, broker, day, s.Seed)
}

// connectionOptions builds the MQTT options from the flags and the environment. The
// password is read from FLEETSIM_PASSWORD or --password-file only.
func connectionOptions(brokerURL string, f *runFlags, getenv func(string) string) (mqttconn.Options, error) {
	o := mqttconn.Options{Broker: brokerURL, ConnectTimeout: f.connectTimeout, RetryFor: f.connectRetryFor, Username: f.username,
		ReconnectBase: f.reconnectBase, ReconnectCap: f.reconnectCap}
	if o.Username == "" {
		o.Username = getenv("FLEETSIM_USERNAME")
	}
	o.Password = getenv("FLEETSIM_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return o, usagef("run: --password-file: %v", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	b, err := scenario.ParseBroker(brokerURL) // checked with the scenario already
	if err != nil {
		return o, usagef("run: broker: %v", err)
	}
	if b.Embedded() {
		return o, nil
	}
	if b.TLS() || f.caFile != "" || f.certFile != "" || f.insecure {
		t, err := tlsConfig(f)
		if err != nil {
			return o, err
		}
		o.TLS = t
	}
	return o, nil
}

// tlsConfig verifies the broker by default (TLS 1.2 at least), against --ca-file when given.
func tlsConfig(f *runFlags) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.insecure}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, usagef("run: --ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("run: --ca-file %s holds no PEM certificate", f.caFile)
		}
		t.RootCAs = pool
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, usagef("run: client certificate: %v", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// newRegistry builds the registry `fleetsim run` serves: the Go and process collectors,
// fleetsim_build_info and the run's metrics, labelled with the scenario's name. The embedded
// broker's metrics join it once the broker is up (metrics.RegisterBroker). The dashboard test
// builds its registry here too, so a panel cannot query a metric the binary does not serve.
func newRegistry(scenarioName string) (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.BuildInfo(reg, version(), runtime.Version())
	return reg, metrics.New(reg, scenarioName)
}

// embeddedStats hands the embedded broker's counters to sim/metrics, which depends on no
// broker of its own.
type embeddedStats struct{ b *broker.Broker }

// BrokerStats implements metrics.Broker.
func (e embeddedStats) BrokerStats() metrics.BrokerStats {
	s := e.b.Stats()
	return metrics.BrokerStats{
		Clients:          s.ClientsConnected,
		Subscriptions:    s.Subscriptions,
		Inflight:         s.Inflight,
		Retained:         s.Retained,
		MessagesReceived: s.MessagesReceived,
		MessagesSent:     s.MessagesSent,
		MessagesDropped:  s.MessagesDropped + s.InflightDropped,
		BytesReceived:    s.BytesReceived,
		BytesSent:        s.BytesSent,
	}
}

// serveMetrics serves reg on addr until stop is called. It returns the bound address.
func serveMetrics(addr string, reg *prometheus.Registry) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("metrics: %w (use --metrics-addr to pick another address, or off)", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// The generator's own profiles, for finding where a run's CPU or memory goes
	// (go tool pprof http://127.0.0.1:9464/debug/pprof/heap), and execution traces, for
	// where its time goes (curl -o t.out .../debug/pprof/trace?seconds=5; go tool trace
	// t.out). The endpoint binds loopback unless told otherwise, like the metrics.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on shutdown
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, ln.Addr().String(), nil
}

var (
	_ flag.Value = (*optionalUint)(nil)
	_ flag.Value = (*optionalDuration)(nil)
)
