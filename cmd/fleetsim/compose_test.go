package main

import (
	"cmp"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is what TestDashboardCompose reads of dashboards/compose.yaml: the keys it
// uses, and no others (a key it does not know is an error, so a misspelt one fails here).
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Volumes     []string          `yaml:"volumes"`
	ExtraHosts  []string          `yaml:"extra_hosts"`
	Ports       []string          `yaml:"ports"`
	NetworkMode string            `yaml:"network_mode"`
	DependsOn   []string          `yaml:"depends_on"`
	Environment map[string]string `yaml:"environment"`
}

// mounts maps each container path of a service's bind mounts to its source, as a path
// relative to the repository root; it fails the test for a source that is not a file or
// directory of the repository.
func (s composeService) mounts(t *testing.T, service string) map[string]string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join(dashboardsDir, ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[0], ".") {
			t.Errorf("%s: volume %q: want ./path:/container/path[:ro], a file of the repository", service, v)
			continue
		}
		src := filepath.Join(root, "dashboards", parts[0])
		rel, err := filepath.Rel(root, src)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Errorf("%s: volume %q mounts %s, outside the repository", service, v, src)
			continue
		}
		if _, err := os.Stat(src); err != nil {
			t.Errorf("%s: volume %q mounts a path the repository does not have: %v", service, v, err)
			continue
		}
		if len(parts) == 3 && parts[2] != "ro" {
			t.Errorf("%s: volume %q: mount the repository's files read-only (:ro)", service, v)
		}
		out[parts[1]] = rel
	}
	return out
}

// TestDashboardCompose checks dashboards/compose.yaml, which no test can run here (these
// machines have no Docker engine): it parses; every volume mounts a file or directory of
// the repository; Prometheus runs with native histograms on, scrapes fleetsim's default
// metrics port on the Docker host as often as the Grafana datasource expects; and Grafana
// gets the repository's provisioning and dashboard, with a datasource that reaches that
// Prometheus.
func TestDashboardCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dashboardsDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("dashboards/compose.yaml: %v", err)
	}
	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("compose.yaml: no prometheus service")
	}
	graf, ok := c.Services["grafana"]
	if !ok {
		t.Fatal("compose.yaml: no grafana service")
	}
	for name, s := range c.Services {
		if s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q: pin a version (the flags and files here are for that version)", name, s.Image)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is published beyond loopback; publish it on 127.0.0.1", name, p)
			}
		}
	}

	// Prometheus: native histograms on, its configuration from the repository.
	flags := map[string]string{}
	for _, arg := range prom.Command {
		k, v, _ := strings.Cut(arg, "=")
		flags[k] = v
	}
	if !slices.Contains(strings.Split(flags["--enable-feature"], ","), "native-histograms") {
		t.Errorf("prometheus: command %q lacks --enable-feature=native-histograms", prom.Command)
	}
	promMounts := prom.mounts(t, "prometheus")
	confPath, ok := promMounts[flags["--config.file"]]
	if !ok {
		t.Fatalf("prometheus: --config.file=%s is not a file mounted from the repository (mounts %v)", flags["--config.file"], promMounts)
	}
	if !slices.Contains(prom.ExtraHosts, "host.docker.internal:host-gateway") {
		t.Errorf("prometheus: extra_hosts %v: want host.docker.internal:host-gateway, so Linux hosts resolve it too", prom.ExtraHosts)
	}

	// It scrapes fleetsim's default metrics port on the host, at the datasource's interval.
	var pc prometheusConfig
	readYAMLFile(t, filepath.Join(dashboardsDir, "..", confPath), &pc)
	f, _, err := parseRunFlags([]string{"x.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(f.metricsAddr)
	want := net.JoinHostPort("host.docker.internal", port)
	var ds struct {
		Datasources []struct {
			URL      string `yaml:"url"`
			JSONData struct {
				TimeInterval string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	// Only the fields needed here; TestDashboardProvisioning reads the file strictly.
	if b, err := os.ReadFile(filepath.Join(dashboardsDir, "provisioning/datasources/prometheus.yml")); err != nil {
		t.Fatal(err)
	} else if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatalf("provisioning/datasources/prometheus.yml: %v", err)
	}
	if len(ds.Datasources) != 1 {
		t.Fatalf("provisioning/datasources/prometheus.yml: %d datasources, want 1", len(ds.Datasources))
	}
	scraped := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, want) {
				scraped = true
				if every := cmp.Or(sc.ScrapeInterval, pc.Global.ScrapeInterval); every != ds.Datasources[0].JSONData.TimeInterval {
					t.Errorf("%s: scrapes every %q, but the Grafana datasource's timeInterval is %q", confPath, every, ds.Datasources[0].JSONData.TimeInterval)
				}
			}
		}
	}
	if !scraped {
		t.Errorf("%s: no job scrapes %s, fleetsim's default metrics port on the Docker host", confPath, want)
	}

	// Grafana: the repository's provisioning, and the dashboard where the provider looks.
	grafMounts := graf.mounts(t, "grafana")
	if grafMounts["/etc/grafana/provisioning"] != "dashboards/provisioning" {
		t.Errorf("grafana: mount dashboards/provisioning at /etc/grafana/provisioning (mounts %v)", grafMounts)
	}
	dir := graf.Environment["FLEETSIM_DASHBOARDS"]
	if grafMounts[dir] != "dashboards" && grafMounts[dir+"/fleetsim.json"] != "dashboards/fleetsim.json" {
		t.Errorf("grafana: FLEETSIM_DASHBOARDS=%q, where the dashboard provider looks, holds no fleetsim.json (mounts %v)", dir, grafMounts)
	}
	// The datasource says http://127.0.0.1:9090: Grafana must share Prometheus's network.
	if graf.NetworkMode != "service:prometheus" {
		t.Errorf("grafana: network_mode %q: want service:prometheus, so the datasource's %s is that Prometheus", graf.NetworkMode, ds.Datasources[0].URL)
	}
	if addr := cmp.Or(flags["--web.listen-address"], ":9090"); !strings.HasSuffix(ds.Datasources[0].URL, addr[strings.LastIndex(addr, ":"):]) {
		t.Errorf("the datasource %s is not Prometheus's port (--web.listen-address %s)", ds.Datasources[0].URL, addr)
	}
}

// readYAMLFile decodes a YAML file strictly into v, failing the test on any error.
func readYAMLFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
