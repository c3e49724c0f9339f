package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fleetsim/fleetsim/devices"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// kubeFlags are the flags of `fleetsim kubernetes`.
type kubeFlags struct {
	shards                         int
	broker, image, namespace, name string
	secret, startAt                string
	duration, day                  optionalDuration
	seed                           optionalUint
	thresholds                     stringList
	allowGeneratorLimit            bool
	grace                          time.Duration
	scenarioData                   []byte // the scenario file, for the ConfigMap
	scenarioKey                    string // its key in the ConfigMap
}

const kubeSynopsis = `Prints the Kubernetes manifests that run a scenario as N shards, one pod each, against a
real broker: a ConfigMap holding the scenario file, a headless Service over the shards'
metrics (port 9464, also annotated for prometheus.io scraping), and an Indexed Job of N
completions run in parallel. Each pod runs "fleetsim run" on its slice of the homes (its index
from JOB_COMPLETION_INDEX, the count from FLEETSIM_SHARDS) and prints its JSON report as one
line starting with {"schema":"fleetsim.report/ at the end of its log. A shard is run once:
a second try would be another measurement, at another time.

Resource requests are sized from fleetsim's own figures (README, "Scale" and
"Performance") for the largest shard: memory per device and per connection, CPU per device
and per message sent or received (a backend sink takes every shard's); the memory limit is
twice the request, with GOMEMLIMIT at 90 %.

The MQTT password comes from the Secret named by --secret (key "password"; key "username"
optional), never from the command line: fleetsim names the Secret and never reads it.
README, "Running on Kubernetes", has the whole loop: build the image, apply, collect, merge.`

const kubeExample = `  kubectl create secret generic fleetsim-mqtt --from-file=password=./mqtt-password
  fleetsim kubernetes scenarios/broker-load.yaml --shards 4 --broker tcp://emqx.mq:1883 \
      --image registry.example/fleetsim@sha256:... --secret fleetsim-mqtt \
      --start-at 2026-12-08T10:00:00Z | kubectl apply -f -`

// defaultMetricsPort is where each shard serves its metrics inside the pod.
const defaultMetricsPort = 9464

func parseKubeFlags(args []string, stdout io.Writer) (*kubeFlags, string, error) {
	f := &kubeFlags{}
	fs := newFlagSet("kubernetes", kubeSynopsis, kubeExample, stdout)
	fs.IntVar(&f.shards, "shards", 0, "how many shards (pods) to split the homes among (required, at least 1)")
	fs.StringVar(&f.broker, "broker", "", "the broker URL every shard connects to (tcp://, ssl://, ws://, wss://; required): reachable from the pods, not the embedded broker")
	fs.StringVar(&f.image, "image", "", "the fleetsim container image (required; README shows how to build one with ko)")
	fs.StringVar(&f.namespace, "namespace", "", "the namespace of every object (default: kubectl's current one)")
	fs.StringVar(&f.name, "name", "", "the name of the Job, Service and ConfigMap (<name>-scenario) (default: the scenario's name)")
	fs.StringVar(&f.secret, "secret", "", "the Secret holding the MQTT password (key password) and, optionally, the username (key username); none when empty")
	fs.StringVar(&f.startAt, "start-at", "", "RFC 3339 `time` at which every shard starts its schedules, so their phases line up")
	fs.Var(&f.duration, "duration", "how long each shard runs (a `duration`), overriding the scenario's; a Job needs one")
	fs.Var(&f.day, "day", "wall time (a `duration`) of one simulated day, overriding the scenario's day")
	fs.Var(&f.seed, "seed", "seed for every random choice, overriding the scenario's seed")
	fs.Var(&f.thresholds, "threshold", "a pass/fail condition for each shard's run, as fleetsim run's --threshold (repeatable)")
	fs.BoolVar(&f.allowGeneratorLimit, "allow-generator-limit", false, "pass each shard's run on its thresholds alone when its generator was the limit, as fleetsim run's")
	fs.DurationVar(&f.grace, "grace", 0, "each run's grace at the end for messages in flight, as fleetsim run's (default: fleetsim run's)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", usagef("kubernetes: want exactly one scenario file, got %d (see fleetsim help kubernetes)", len(pos))
	}
	return f, pos[0], f.check()
}

// check checks the flags that need no scenario.
func (f *kubeFlags) check() error {
	switch {
	case f.shards < 1:
		return usagef("kubernetes: --shards must be at least 1 (got %d)", f.shards)
	case f.broker == "":
		return usagef("kubernetes: --broker is required: the URL of the broker every shard connects to")
	case strings.TrimSpace(f.image) == "" || strings.ContainsAny(f.image, " \t\n"):
		return usagef("kubernetes: --image is required: a container image reference without spaces, e.g. registry.example/fleetsim:v1")
	case f.grace < 0:
		return usagef("kubernetes: --grace must not be negative")
	}
	if f.startAt != "" {
		if _, err := time.Parse(time.RFC3339, f.startAt); err != nil {
			return usagef("kubernetes: --start-at %q is not an RFC 3339 time such as 2026-12-08T10:00:00Z", f.startAt)
		}
	}
	for _, t := range f.thresholds {
		if _, err := measure.Parse(t); err != nil {
			return usagef("kubernetes: --threshold: %v", err)
		}
	}
	if err := checkBroker(f.broker); err != nil {
		return err
	}
	return checkNames(f)
}

// checkBroker refuses a broker the pods cannot share (the embedded one, or loopback), and
// credentials in its URL.
func checkBroker(s string) error {
	b, err := scenario.ParseBroker(s)
	if err != nil {
		return usagef("kubernetes: --broker: %v", err)
	}
	if b.Embedded() {
		return usagef("kubernetes: --broker: shards must share one real broker; the embedded broker is each process's own")
	}
	if b.URL.User != nil {
		return usagef("kubernetes: --broker: give no user or password in the URL (it would be in every manifest and pod): the Secret named by --secret holds them")
	}
	host := b.URL.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return usagef("kubernetes: --broker %s is loopback: in a pod that is the pod itself; give an address the pods reach (a Service name, e.g. tcp://mosquitto.mq:1883)", s)
	}
	return nil
}

// checkNames checks the names that become Kubernetes object names.
func checkNames(f *kubeFlags) error {
	if f.namespace != "" {
		if errs := validation.IsDNS1123Label(f.namespace); len(errs) > 0 {
			return usagef("kubernetes: --namespace %q: %s", f.namespace, strings.Join(errs, "; "))
		}
	}
	if f.secret != "" {
		if errs := validation.IsDNS1123Subdomain(f.secret); len(errs) > 0 {
			return usagef("kubernetes: --secret %q: %s", f.secret, strings.Join(errs, "; "))
		}
	}
	if f.name != "" {
		return checkJobName(f.name, f.shards)
	}
	return nil
}

// checkJobName checks a Job's name: a DNS label short enough that its pods' host names,
// <name>-<index>, are DNS labels too.
func checkJobName(name string, shards int) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return usagef("kubernetes: --name %q: %s", name, strings.Join(errs, "; "))
	}
	if n := len(name) + 1 + len(strconv.Itoa(shards-1)); n > validation.DNS1123LabelMaxLength {
		return usagef("kubernetes: --name %q is too long: its pods' host names (%s-%d) would have %d characters, more than %d",
			name, name, shards-1, n, validation.DNS1123LabelMaxLength)
	}
	return nil
}

var notInName = regexp.MustCompile(`[^a-z0-9]+`)

// nameFor makes a Job name of a scenario's name: lower case, runs of other characters as
// one '-', short enough for its pods' host names.
func nameFor(scenarioName string, shards int) string {
	n := strings.Trim(notInName.ReplaceAllString(strings.ToLower(scenarioName), "-"), "-")
	limit := validation.DNS1123LabelMaxLength - 1 - len(strconv.Itoa(shards-1))
	if len(n) > limit {
		n = strings.TrimRight(n[:limit], "-")
	}
	if n == "" {
		n = "fleetsim"
	}
	return n
}

// kubernetesCommand is `fleetsim kubernetes`: it loads and checks the scenario as each
// shard will, and prints the manifests to stdout.
func kubernetesCommand(args []string, stdout, stderr io.Writer) error {
	f, file, err := parseKubeFlags(args, stdout)
	if err != nil {
		return err
	}
	s, err := loadKubeScenario(f, file)
	if err != nil {
		return err
	}
	if s.Duration <= 0 {
		return usagef("kubernetes: %s runs until Ctrl-C (no duration): give --duration so that every shard ends and prints its report", file)
	}
	if len(s.Connections.SourceAddresses) > 0 {
		return usagef("kubernetes: %s sets connections.source_addresses, but a pod has one address of its own: remove them and use more shards for more connections", file)
	}
	if f.shards > s.Homes {
		return usagef("kubernetes: --shards %d is more than the scenario's %d home(s): a shard is a slice of homes", f.shards, s.Homes)
	}
	if f.name == "" {
		f.name = nameFor(s.Name, f.shards)
	}
	z := sizeShard(s, f.shards)
	if z.connections > ephemeralPortsPerAddress {
		fmt.Fprintf(stderr, "fleetsim: warning: a shard opens up to %d connections, more than the %d ephemeral ports one pod address has by default: use --shards %d or more, or widen net.ipv4.ip_local_port_range in the pods\n",
			z.connections, ephemeralPortsPerAddress, (s.ConnectionCount()+ephemeralPortsPerAddress-1)/ephemeralPortsPerAddress)
	}
	out, err := kubeManifests(f, s, z)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// loadKubeScenario reads the scenario file and checks it with the flags that override it,
// as each shard's fleetsim run will.
func loadKubeScenario(f *kubeFlags, file string) (*scenario.Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("kubernetes: %v", err)
	}
	o := scenarioOverrides(f.broker, &f.duration, &f.day, &f.seed)
	s, err := scenario.LoadWith(file, devices.Kinds(), o)
	var problems *scenario.Errors
	if errors.As(err, &problems) {
		return nil, usageError{fmt.Errorf("invalid scenario (fleetsim validate %s checks it):\n%w", file, err)}
	}
	if err != nil {
		return nil, usageError{err}
	}
	f.scenarioData = data
	f.scenarioKey = filepath.Base(file)
	if len(validation.IsConfigMapKey(f.scenarioKey)) > 0 {
		f.scenarioKey = "scenario.yaml"
	}
	return s, nil
}
