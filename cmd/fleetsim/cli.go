package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"runtime/debug"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/link"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// errHelp means help was asked for and printed: exit 0.
var errHelp = errors.New("help printed")

const mainUsage = `fleetsim runs a simulated IoT device fleet over MQTT.

Usage:
  fleetsim run [flags] SCENARIO      run a scenario (embedded broker unless --broker)
  fleetsim validate SCENARIO...      check scenario files, reporting every problem as file:line
  fleetsim merge REPORT...           merge the JSON reports of a run's shards into one (exits with its verdict)
  fleetsim kubernetes SCENARIO --shards N --broker URL --image IMAGE
                                     print the manifests that run it as N shards (an Indexed Job)
  fleetsim kinds                     list the device kinds (params, defaults) and link profiles
  fleetsim version                   print the version
  fleetsim help COMMAND              show a command's flags

Examples:
  fleetsim run scenarios/smart-home.yaml
  mosquitto_sub -h 127.0.0.1 -t '#' -v                 # in another terminal: watch the devices
  fleetsim run scenarios/temperature.yaml --broker tcp://127.0.0.1:1883
  FLEETSIM_PASSWORD=... fleetsim run scenarios/encyclopedia.yaml \
      --broker ssl://example.hivemq.cloud:8883 --username me

Exit codes: 0 passed; 1 the run or a check failed (a device stopped with an error); 2 bad
flags, arguments or scenario; 3 broker unreachable (after retrying for --connect-retry-for);
4 credentials refused; 5 TLS failed (untrusted certificate, wrong host name, not a TLS port);
98 the generator, not the broker, was the limit (it fell behind its schedules, shed load or
starved its own receivers; --allow-generator-limit passes such a run on its thresholds);
99 a threshold was crossed (the report says which).
`

// run is the whole program, minus signals and os.Exit. Cancelling ctx stops a run, after a
// grace period for the work in flight; cancelling hard as well cuts the grace period short.
// A caller without a second signal passes context.Background() as hard.
func run(ctx, hard context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCommand(ctx, hard, rest, stdout, stderr, getenv)
	case "validate":
		return validateCommand(rest, stdout, stderr)
	case "merge":
		return mergeCommand(rest, stdout, stderr)
	case "kinds":
		return kindsCommand(rest, stdout, stderr)
	case "kubernetes":
		return kubernetesCommand(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "fleetsim "+version())
		return nil
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, hard, []string{rest[0], "--help"}, stdout, stderr, getenv)
		}
		fmt.Fprint(stdout, mainUsage)
		return errHelp
	default:
		fmt.Fprint(stderr, mainUsage)
		return usagef("unknown command %q", cmd)
	}
}

// newFlagSet returns a flag set that prints usage (with an example) to the right stream.
func newFlagSet(name, synopsis, example string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: fleetsim %s\n\n%s\n\nExample:\n%s\n\nFlags:\n", name, synopsis, example)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses flags that may come before or after the positional arguments
// ("fleetsim run file.yaml --broker ..."), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp // Parse printed the usage
			}
			return nil, usagef("%s: %v (see fleetsim help %s)", fs.Name(), err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func validateCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "Checks scenario files without running them. Every problem is reported at once,\nas file:line: message; unknown fields are errors.",
		"  fleetsim validate scenarios/*.yaml", stdout)
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("validate: name at least one scenario file")
	}
	bad := 0
	for _, f := range files {
		s, err := scenario.Load(f, devices.Kinds())
		if err != nil {
			fmt.Fprintln(stderr, err)
			bad++
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s: %d device(s) in %d home(s), %d %s connection(s))\n",
			f, s.Name, s.DeviceCount(), s.Homes, s.ConnectionCount(), s.Connections.Mode)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d scenario file(s) have problems", bad, len(files))
	}
	return nil
}

func kindsCommand(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("kinds", "Lists the device kinds a scenario may use, with their params and defaults.",
		"  fleetsim kinds", stdout)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	kinds := devices.Kinds()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		k := kinds[n]
		fmt.Fprintf(stdout, "%s: %s\n", n, k.Doc)
		out, err := yaml.Marshal(k.NewParams())
		if err != nil || strings.TrimSpace(string(out)) == "{}" {
			fmt.Fprintln(stdout, "  (no params)")
			continue
		}
		fmt.Fprintln(stdout, "  params:")
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			fmt.Fprintln(stdout, "    "+line)
		}
	}
	fmt.Fprintln(stdout, "\nlink profiles (a group's link: with connections: per-device; shared connections: {mode: per-home, link: ...}):")
	profiles := link.Profiles()
	for _, name := range slices.Sorted(maps.Keys(profiles)) {
		p := profiles[name]
		outage := "no outages"
		if p.OutageEvery > 0 {
			outage = fmt.Sprintf("down %v about every %v", p.OutageFor, p.OutageEvery)
		}
		fmt.Fprintf(stdout, "  %-10s up %s, down %s, latency %v + jitter %v, %s\n",
			name, bytesPerSec(p.UpBytesPerSec), bytesPerSec(p.DownBytesPerSec), p.Latency, p.Jitter, outage)
	}
	return nil
}

func bytesPerSec(r float64) string {
	switch {
	case r == 0:
		return "unlimited"
	case r >= 1e6:
		return fmt.Sprintf("%.4g MB/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.4g kB/s", r/1e3)
	}
	return fmt.Sprintf("%.0f B/s", r)
}

// version is the module version when built from a tagged module, else the VCS revision.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
