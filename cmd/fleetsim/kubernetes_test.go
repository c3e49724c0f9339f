package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/fleetsim/fleetsim/sim/testbroker"
)

// manifests are the objects `fleetsim kubernetes` printed, each decoded strictly.
type manifests struct {
	configMap *corev1.ConfigMap
	service   *corev1.Service
	job       *batchv1.Job
}

// decodeManifests decodes every document of out strictly (unknown or duplicate fields are
// errors) into the typed object its kind names, and wants exactly one ConfigMap, Service
// and Job.
func decodeManifests(t *testing.T, out []byte) manifests {
	t.Helper()
	var m manifests
	docs := bytes.Split(out, []byte("\n---\n"))
	if len(docs) != 3 {
		t.Fatalf("want 3 documents, got %d:\n%s", len(docs), out)
	}
	for i, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			m.configMap = &corev1.ConfigMap{}
			obj = m.configMap
		case "v1 Service":
			m.service = &corev1.Service{}
			obj = m.service
		case "batch/v1 Job":
			m.job = &batchv1.Job{}
			obj = m.job
		default:
			t.Fatalf("document %d is a %s %s, not a v1 ConfigMap, v1 Service or batch/v1 Job:\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v\n%s", i, tm.Kind, err, doc)
		}
	}
	if m.configMap == nil || m.service == nil || m.job == nil {
		t.Fatalf("want a ConfigMap, a Service and a Job, got %+v", m)
	}
	return m
}

// kubernetesOut runs `fleetsim kubernetes` in process and returns its stdout.
func kubernetesOut(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), context.Background(), append([]string{"kubernetes"}, args...), &stdout, &stderr, func(string) string { return "" })
	if err != nil {
		t.Fatalf("fleetsim kubernetes %s: %v\nstderr:\n%s", strings.Join(args, " "), err, &stderr)
	}
	return stdout.Bytes()
}

func container(t *testing.T, m manifests) corev1.Container {
	t.Helper()
	cs := m.job.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	return cs[0]
}

// TestKubeManifests runs the real binary with a password in its environment and checks
// every object it prints: strict decoding, the Indexed Job, the Secret reference, the
// scenario, scraping and the pod's security.
func TestKubeManifests(t *testing.T) {
	t.Parallel()
	const password = "pw-do-not-print-8c1f0e"
	p := start(t, []string{"FLEETSIM_PASSWORD=" + password, "FLEETSIM_USERNAME=user-do-not-print"},
		"kubernetes", "scenarios/broker-load.yaml", "--shards", "3", "--broker", "ssl://broker.example:8883",
		"--image", "registry.example/fleetsim:v1", "--secret", "mqtt-creds", "--namespace", "load",
		"--start-at", "2026-12-08T10:00:00Z", "--duration", "90s", "--threshold", "loss==0")
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, p.stderr)
	}
	out := p.stdout.String()
	for _, secret := range []string{password, "user-do-not-print"} {
		if strings.Contains(out, secret) || strings.Contains(p.stderr.String(), secret) {
			t.Errorf("a credential from the environment (%s) appears in the output", secret)
		}
	}
	m := decodeManifests(t, []byte(out))
	checkJob(t, m, 3)
	checkCredentials(t, container(t, m), "mqtt-creds")
	checkScenario(t, m, "../../scenarios/broker-load.yaml")
	checkScraping(t, m)
	checkSecurity(t, m)
	for _, o := range []metav1.ObjectMeta{m.configMap.ObjectMeta, m.service.ObjectMeta, m.job.ObjectMeta} {
		if o.Namespace != "load" {
			t.Errorf("%s is in namespace %q, want load", o.Name, o.Namespace)
		}
	}
	args := strings.Join(container(t, m).Args, " ")
	for _, want := range []string{"--broker ssl://broker.example:8883", "--start-at 2026-12-08T10:00:00Z", "--duration 1m30s", "--threshold loss==0", "--report -", "--quiet"} {
		if !strings.Contains(args, want) {
			t.Errorf("the pod's args %q lack %q", args, want)
		}
	}
}

func checkJob(t *testing.T, m manifests, shards int32) {
	t.Helper()
	s := m.job.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v, want Indexed", s.CompletionMode)
	}
	if s.Completions == nil || *s.Completions != shards || s.Parallelism == nil || *s.Parallelism != shards {
		t.Errorf("completions %v, parallelism %v: want both %d", s.Completions, s.Parallelism, shards)
	}
	if s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex != 0 {
		t.Errorf("backoffLimitPerIndex %v, want 0: a shard is run once", s.BackoffLimitPerIndex)
	}
	if r := s.Template.Spec.RestartPolicy; r != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", r)
	}
	env := container(t, m).Env
	if i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "FLEETSIM_SHARDS" }); i < 0 || env[i].Value != itoa(int(shards)) {
		t.Errorf("FLEETSIM_SHARDS is not %d in %+v", shards, env)
	}
}

// checkCredentials wants the password and username from the Secret by reference, and no
// credential given inline.
func checkCredentials(t *testing.T, c corev1.Container, secret string) {
	t.Helper()
	found := map[string]bool{}
	for _, e := range c.Env {
		if e.Name != "FLEETSIM_PASSWORD" && e.Name != "FLEETSIM_USERNAME" {
			continue
		}
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != secret {
			t.Errorf("%s is not taken from Secret %s by reference: %+v", e.Name, secret, e)
			continue
		}
		found[e.Name] = true
		optional := e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional
		if e.Name == "FLEETSIM_PASSWORD" && optional {
			t.Errorf("the password is optional: a pod without it would run anonymously")
		}
	}
	if !found["FLEETSIM_PASSWORD"] || !found["FLEETSIM_USERNAME"] {
		t.Errorf("want FLEETSIM_PASSWORD and FLEETSIM_USERNAME from Secret %s, got %v", secret, found)
	}
	for _, a := range c.Args {
		if strings.Contains(a, "password") {
			t.Errorf("an argument mentions a password: %q", a)
		}
	}
}

// checkScenario wants the ConfigMap to hold the file byte for byte, mounted where the
// pod's fleetsim run reads it.
func checkScenario(t *testing.T, m manifests, file string) {
	t.Helper()
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Base(file)
	if got := m.configMap.Data[key]; got != string(want) {
		t.Errorf("the ConfigMap's %s differs from %s:\n%s", key, file, got)
	}
	vols := m.job.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].ConfigMap == nil || vols[0].ConfigMap.Name != m.configMap.Name {
		t.Fatalf("the pod does not mount ConfigMap %s: %+v", m.configMap.Name, vols)
	}
	c := container(t, m)
	mounts := c.VolumeMounts
	if len(mounts) != 1 || mounts[0].Name != vols[0].Name || !mounts[0].ReadOnly {
		t.Fatalf("volume mounts %+v", mounts)
	}
	if len(c.Args) < 2 || c.Args[0] != "run" || c.Args[1] != filepath.Join(mounts[0].MountPath, key) {
		t.Errorf("the pod runs %q, not fleetsim run on %s", c.Args, filepath.Join(mounts[0].MountPath, key))
	}
}

// checkScraping wants every shard's metrics port reachable by annotation and through the
// headless Service, and fleetsim listening on it beyond loopback.
func checkScraping(t *testing.T, m manifests) {
	t.Helper()
	c := container(t, m)
	pod := m.job.Spec.Template
	ann := pod.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v", ann)
	}
	if len(c.Ports) != 1 || itoa(int(c.Ports[0].ContainerPort)) != ann["prometheus.io/port"] {
		t.Errorf("container ports %+v do not match the annotated port %q", c.Ports, ann["prometheus.io/port"])
	}
	if i := slices.Index(c.Args, "--metrics-addr"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != ":"+ann["prometheus.io/port"] {
		t.Errorf("fleetsim does not serve metrics on every address at the annotated port: %q", c.Args)
	}
	svc := m.service.Spec
	if svc.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the Service is not headless: clusterIP %q", svc.ClusterIP)
	}
	for k, v := range svc.Selector {
		if pod.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the pods lack (%v)", k, v, pod.Labels)
		}
	}
	if len(svc.Ports) != 1 || svc.Ports[0].TargetPort.StrVal != c.Ports[0].Name {
		t.Errorf("Service ports %+v do not reach the container port %q", svc.Ports, c.Ports[0].Name)
	}
}

func checkSecurity(t *testing.T, m manifests) {
	t.Helper()
	pod := m.job.Spec.Template.Spec
	if s := pod.SecurityContext; s == nil || s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.FSGroup == nil || s.RunAsUser == nil || *s.RunAsUser == 0 {
		t.Errorf("the pod may run as root: %+v", s)
	}
	s := container(t, m).SecurityContext
	if s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation {
		t.Errorf("the container's root file system is writable or it may escalate: %+v", s)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// fleetScenario writes a scenario of homes homes, each with perHome meters publishing once
// a second on per-device connections.
func fleetScenario(t *testing.T, homes, perHome int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "fleet.yaml")
	doc := "name: fleet_test\nduration: 1m\nhomes: " + itoa(homes) + "\nconnections: per-device\ndevices:\n" +
		"  - {kind: load, name: meter, count: " + itoa(perHome) + ", params: {rate: 1}}\n"
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// requests are the shard container's CPU and memory requests and memory limit.
func requests(t *testing.T, file string, shards int) (cpu, mem, limit resource.Quantity) {
	t.Helper()
	m := decodeManifests(t, kubernetesOut(t, file, "--shards", itoa(shards), "--broker", "tcp://mq:1883", "--image", "fleetsim:test"))
	if base := strings.TrimSuffix(filepath.Base(file), ".yaml"); base == "fleet" && m.job.Name != "fleet-test" {
		t.Errorf("the Job of scenario fleet_test is named %q, want fleet-test", m.job.Name)
	}
	r := container(t, m).Resources
	return r.Requests[corev1.ResourceCPU], r.Requests[corev1.ResourceMemory], r.Limits[corev1.ResourceMemory]
}

// TestKubeRequestsGrowWithTheFleet: a shard of a larger fleet asks for more CPU and
// memory, more shards of one fleet ask for less each, and the limit is above the request.
func TestKubeRequestsGrowWithTheFleet(t *testing.T) {
	t.Parallel()
	var lastCPU, lastMem resource.Quantity
	for i, homes := range []int{10, 1_000, 10_000} {
		cpu, mem, limit := requests(t, fleetScenario(t, homes, 10), 1)
		if i > 0 && (cpu.Cmp(lastCPU) <= 0 || mem.Cmp(lastMem) <= 0) {
			t.Errorf("%d homes ask for cpu %s, memory %s: not more than %s, %s for fewer", homes, cpu.String(), mem.String(), lastCPU.String(), lastMem.String())
		}
		if limit.Cmp(mem) <= 0 {
			t.Errorf("%d homes: memory limit %s is not above the request %s", homes, limit.String(), mem.String())
		}
		lastCPU, lastMem = cpu, mem
	}
	file := fleetScenario(t, 10_000, 10)
	_, one, _ := requests(t, file, 1)
	_, ten, _ := requests(t, file, 10)
	if ten.Cmp(one) >= 0 {
		t.Errorf("a tenth of the fleet asks for %s, no less than the whole (%s)", ten.String(), one.String())
	}
}

// TestKubeRequestsCoverTheSink: the shard that may host the fleet's one backend asks for
// the CPU to take every shard's messages, not only its own shard's.
func TestKubeRequestsCoverTheSink(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "fan-in.yaml")
	doc := `name: fan-in
duration: 1m
homes: 1000
connections: per-home
devices:
  - {kind: load, name: meter, count: 10, max_rate: 10, params: {rate: 10}}
  - {kind: sink, name: backend, homes: 1, count: 2, params: {subscribe: ["$share/b/home/+/load/#"]}}
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cpu, _, _ := requests(t, file, 10)
	// 100,000 messages a second received, at half of 28 µs each, and 10,000 sent.
	if want := int64(100_000*milliCPUPerMessage/2 + 10_000*milliCPUPerMessage/2); cpu.MilliValue() < want {
		t.Errorf("a shard of the fan-in asks for %dm of CPU, less than the %dm its backend needs to take the fleet's messages", cpu.MilliValue(), want)
	}
}

// TestKubeRequestsCoverTheMeasuredMemory: sized from the README's figures, a shard's
// memory request is at least the peak RSS README "Scale" measured for that many devices
// on 100 pooled connections.
func TestKubeRequestsCoverTheMeasuredMemory(t *testing.T) {
	for _, c := range []struct{ devices, measuredMB int }{{10_000, 74}, {100_000, 431}, {1_000_000, 3_989}} {
		z := shardSize{homes: 1, devices: c.devices, connections: 100}
		if got := z.memoryRequest(); got < int64(c.measuredMB)*1_000_000 {
			t.Errorf("%d devices: request %d bytes, below the %d MB measured", c.devices, got, c.measuredMB)
		}
	}
}

// TestKubeWithoutSecret: without --secret no credential is set at all.
func TestKubeWithoutSecret(t *testing.T) {
	t.Parallel()
	m := decodeManifests(t, kubernetesOut(t, "../../scenarios/broker-load.yaml", "--shards", "200", "--broker", "tcp://mq:1883", "--image", "fleetsim:test"))
	checkJob(t, m, 200)
	for _, e := range container(t, m).Env {
		if strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "USERNAME") {
			t.Errorf("credential %s set without --secret: %+v", e.Name, e)
		}
	}
	if m.job.Name != "broker-load" || m.configMap.Name != "broker-load-scenario" {
		t.Errorf("names %s, %s: want them from the scenario's name", m.job.Name, m.configMap.Name)
	}
}

// TestKubeBadInput: every mistake is a usage error (exit 2) that says what is wrong.
func TestKubeBadInput(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\nduration: 1m\nhomes: 2\ndevices:\n  - kind: lamp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forever := filepath.Join(t.TempDir(), "forever.yaml")
	if err := os.WriteFile(forever, []byte("name: forever\nhomes: 2\ndevices: [{kind: sensor}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sources := filepath.Join(t.TempDir(), "sources.yaml")
	if err := os.WriteFile(sources, []byte("name: s\nduration: 1m\nhomes: 2\nconnections: {mode: per-device, source_addresses: [127.0.0.1, 127.0.0.2]}\ndevices: [{kind: sensor}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := []string{"--broker", "tcp://mq:1883", "--image", "fleetsim:test"}
	file := "../../scenarios/broker-load.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{file, "--shards", "0"}, ok...), "--shards must be at least 1"},
		{append([]string{file}, ok...), "--shards must be at least 1"},
		{[]string{file, "--shards", "2", "--image", "x"}, "--broker is required"},
		{[]string{file, "--shards", "2", "--broker", "tcp://mq:1883"}, "--image is required"},
		{[]string{file, "--shards", "2", "--broker", "embedded", "--image", "x"}, "one real broker"},
		{[]string{file, "--shards", "2", "--broker", "tcp://127.0.0.1:1883", "--image", "x"}, "loopback"},
		{[]string{file, "--shards", "2", "--broker", "http://mq", "--image", "x"}, `unsupported scheme "http"`},
		{[]string{file, "--shards", "2", "--broker", "tcp://me:pw@mq:1883", "--image", "x"}, "no user or password in the URL"},
		{[]string{file, "--shards", "2", "--broker", "mq:1883", "--image", "x"}, "not a broker URL"},
		{append([]string{file, "--shards", "2", "--start-at", "tomorrow"}, ok...), "RFC 3339"},
		{append([]string{file, "--shards", "2", "--name", "Big_Name"}, ok...), "--name"},
		{append([]string{file, "--shards", "2", "--namespace", "a.b"}, ok...), "--namespace"},
		{append([]string{file, "--shards", "2", "--threshold", "p99<"}, ok...), "--threshold"},
		{append([]string{file, "--shards", "201"}, ok...), "more than the scenario's 200 home(s)"},
		{append([]string{bad, "--shards", "2"}, ok...), bad + ":5:"},
		{append([]string{forever, "--shards", "2"}, ok...), "give --duration"},
		{append([]string{sources, "--shards", "2"}, ok...), "source_addresses"},
		{append([]string{"no-such.yaml", "--shards", "2"}, ok...), "no-such.yaml"},
		{append([]string{file, file, "--shards", "2"}, ok...), "exactly one scenario file"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), context.Background(), append([]string{"kubernetes"}, c.args...), &stdout, &stderr, func(string) string { return "" })
		code := exitCode(err, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("fleetsim kubernetes %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr.String(), c.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("fleetsim kubernetes %s printed manifests after an error:\n%s", strings.Join(c.args, " "), &stdout)
		}
	}
}

// TestKubeHelp: fleetsim --help lists the command, which has its own help.
func TestKubeHelp(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "--help")
	if code := p.wait(t, 10*time.Second); code != 0 || !strings.Contains(p.stdout.String(), "fleetsim kubernetes SCENARIO --shards N") {
		t.Errorf("fleetsim --help: exit %d, does not list kubernetes:\n%s", code, p.stdout)
	}
	p = start(t, nil, "help", "kubernetes")
	if code := p.wait(t, 10*time.Second); code != 0 || !strings.Contains(p.stdout.String(), "-shards") || !strings.Contains(p.stdout.String(), "Indexed Job") {
		t.Errorf("fleetsim help kubernetes: exit %d:\n%s", code, p.stdout)
	}
	p = start(t, nil, "kubernetes", "scenarios/broker-load.yaml", "--shards", "2", "--image", "x")
	if code := p.wait(t, 10*time.Second); code != 2 || !strings.Contains(p.stderr.String(), "--broker is required") {
		t.Errorf("the binary without --broker: exit %d, stderr %q; want 2", code, p.stderr)
	}
}

// TestKubePodRunsItsShard plays the kubelet: it "mounts" the printed ConfigMap in a
// directory, fills the printed environment from a Secret, runs the printed container's
// args with the real binary against a real mosquitto that wants that password, and reads
// the report as the README's collect step does, from one log of stdout and stderr mixed.
func TestKubePodRunsItsShard(t *testing.T) {
	t.Parallel()
	secret := map[string]string{"username": "fleet", "password": "pw-kube-4f7a"}
	mq := testbroker.StartMosquitto(t, testbroker.Config{Users: map[string]string{secret["username"]: secret["password"]}})
	file := loadScenario(t, "2s", 5)
	m := decodeManifests(t, kubernetesOut(t, file, "--shards", "1", "--broker", "tcp://mosquitto.test:1883", "--image", "fleetsim:test", "--secret", "creds"))
	c := container(t, m)

	mount := t.TempDir()
	for key, data := range m.configMap.Data {
		if err := os.WriteFile(filepath.Join(mount, key), []byte(data), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	args := slices.Clone(c.Args)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, c.VolumeMounts[0].MountPath+"/"):
			args[i] = filepath.Join(mount, strings.TrimPrefix(a, c.VolumeMounts[0].MountPath+"/"))
		case a == "tcp://mosquitto.test:1883":
			args[i] = mq.URL()
		case strings.HasPrefix(a, ":"): // --metrics-addr: on loopback, any port, in a test
			args[i] = "127.0.0.1:0"
		}
	}
	env := []string{"JOB_COMPLETION_INDEX=0"}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env = append(env, e.Name+"="+secret[e.ValueFrom.SecretKeyRef.Key])
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}

	var log syncBuffer
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("the pod's fleetsim %q: %v\nlog:\n%s", args, err, &log)
	}
	var last string
	for line := range strings.Lines(log.String()) {
		if strings.HasPrefix(line, reportStart) {
			last = line
		}
	}
	var r report
	if err := json.Unmarshal([]byte(last), &r); err != nil {
		t.Fatalf("no report line starting %s in the log: %v\nlog:\n%s", reportStart, err, &log)
	}
	if r.Schema != "fleetsim.report/v1" || !r.Passed || r.Totals.Delivered == 0 {
		t.Errorf("report: schema %q, passed %v, delivered %d: want a passed run that delivered\nlog:\n%s", r.Schema, r.Passed, r.Totals.Delivered, &log)
	}
	if strings.Contains(log.String(), secret["password"]) {
		t.Errorf("the password appears in the pod's log")
	}
}

// TestKubeReadmeLoop keeps README's "Running on Kubernetes" true to the command: its
// fleetsim kubernetes line prints manifests, and its collect step looks for the line the
// pods print.
func TestKubeReadmeLoop(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Running on Kubernetes\n")
	if !ok {
		t.Fatal(`README has no "## Running on Kubernetes"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, "grep '^"+reportStart+"'") {
		t.Errorf("the README's collect step does not grep for %s", reportStart)
	}
	_, cmd, ok := strings.Cut(section, "\nfleetsim kubernetes ")
	if !ok {
		t.Fatal("the README runs no fleetsim kubernetes")
	}
	cmd, _, _ = strings.Cut(strings.ReplaceAll(cmd, "\\\n", " "), " > ")
	cmd = strings.NewReplacer(`"$IMAGE"`, "registry.example/fleetsim@sha256:0", `"$(date -u -d '+5 min' +%FT%TZ)"`, "2026-12-08T10:00:00Z").Replace(cmd)
	args := strings.Fields(cmd)
	args[0] = "../../" + args[0]
	m := decodeManifests(t, kubernetesOut(t, args...))
	checkJob(t, m, 4)
	if name := m.job.Name; !strings.Contains(section, "job-name="+name+",") {
		t.Errorf("the README's collect step does not select the pods of Job %s", name)
	}
}
