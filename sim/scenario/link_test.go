package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim/link"
)

func TestLinks(t *testing.T) {
	s, err := Parse("ok.yaml", []byte(doc(
		"name: x",
		"connections: per-device",
		"devices:",
		"  - kind: lamp",
		"    link: nb-iot",
		"  - kind: lamp",
		"    name: cam",
		"    link: {profile: wifi, name: slow-wifi, up_bytes_per_sec: 8000, latency: 20ms}",
		"  - kind: lamp",
		"    name: own",
		"    link: {up_bytes_per_sec: 500}",
		"  - kind: lamp",
		"    name: plain",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	nb, wifi, own := s.Groups[0].Link, s.Groups[1].Link, s.Groups[2].Link
	if nb == nil || nb.Name != "nb-iot" || nb.UpBytesPerSec == 0 {
		t.Errorf("nb-iot link = %+v", nb)
	}
	if wifi == nil || wifi.Name != "slow-wifi" || wifi.UpBytesPerSec != 8000 || wifi.Latency != 20*time.Millisecond || wifi.DownBytesPerSec == 0 {
		t.Errorf("overridden wifi link = %+v, want 8000 B/s up, 20ms, wifi's down rate kept", wifi)
	}
	if own == nil || own.Name != "custom" || own.UpBytesPerSec != 500 {
		t.Errorf("own link = %+v", own)
	}
	if s.Groups[3].Link != nil {
		t.Errorf("a group without link got %+v", s.Groups[3].Link)
	}

	_, err = Parse("bad.yaml", []byte(doc(
		"name: x",
		"devices:",
		"  - kind: lamp",
		"    link: lora",
		"  - kind: lamp",
		"    name: b",
		"    link: {profile: wifi, latncy: 1s}",
		"  - kind: lamp",
		"    name: c",
		"    link: {up_bytes_per_sec: -5}",
	)), testKinds)
	got := err.Error()
	for _, want := range []string{
		`bad.yaml:4: devices[0].link: unknown link profile "lora"`,
		`bad.yaml:4: devices[0].link: a group's link shapes each device's own connection and needs connections: per-device; to shape the shared connections, set the link there: connections: {mode: per-home, link: ...}`,
		`bad.yaml:7: unknown field "latncy" in devices[1].link; did you mean "latency"?`,
		`bad.yaml:10: devices[2].link: `,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q; got:\n%s", want, got)
		}
	}
}

// TestConnectionsLink covers the link of shared connections, set on connections.
func TestConnectionsLink(t *testing.T) {
	sat := func(latency time.Duration) *link.Profile {
		p, err := link.Lookup("satellite", link.Profile{Latency: latency})
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	nb := link.Profiles()["nb-iot"]
	wifi := link.Profiles()["wifi"]
	wifiUp := wifi
	wifiUp.Name, wifiUp.UpBytesPerSec = "wifi*", 50000
	for _, tt := range []struct {
		value string
		want  Connections
	}{
		{"{mode: per-home, link: nb-iot}", Connections{Mode: PerHome, Link: &nb}},
		{"{pool: 4, link: {profile: wifi, up_bytes_per_sec: 50000}}", Connections{Mode: Pool, PoolSize: 4, Link: &wifiUp}},
		{"{mode: pool, pool: 2, link: wifi}", Connections{Mode: Pool, PoolSize: 2, Link: &wifi}},
		{"{mode: per-device, link: wifi}", Connections{Mode: PerDevice, Link: &wifi}},
		{"\n  mode: per-home\n  link: {profile: satellite, latency: 600ms}", Connections{Mode: PerHome, Link: sat(600 * time.Millisecond)}},
		{"{mode: per-home}", Connections{Mode: PerHome}},
		{"{pool: 3}", Connections{Mode: Pool, PoolSize: 3}},
	} {
		s, err := Parse("c.yaml", []byte("name: c\nconnections: "+tt.value+"\ndevices: [{kind: lamp}]\n"), testKinds)
		if err != nil {
			t.Errorf("%s: %v", tt.value, err)
			continue
		}
		got := s.Connections
		if got.Mode != tt.want.Mode || got.PoolSize != tt.want.PoolSize || (got.Link == nil) != (tt.want.Link == nil) ||
			got.Link != nil && *got.Link != *tt.want.Link {
			t.Errorf("%s: got %+v (link %+v), want %+v (link %+v)", tt.value, got, got.Link, tt.want, tt.want.Link)
		}
	}
	if p := sat(600 * time.Millisecond); p.Latency != 600*time.Millisecond || p.Name != "satellite*" {
		t.Errorf("satellite with latency: 600ms = %+v", p)
	}
}

// TestDeviceLink checks which link each device gets with per-device connections: its
// group's own, or else the connections' default; none with shared connections.
func TestDeviceLink(t *testing.T) {
	s, err := Parse("d.yaml", []byte(doc(
		"name: d",
		"connections: {mode: per-device, link: lte-m}",
		"devices:",
		"  - {kind: lamp, link: ble}",
		"  - {kind: sensor}",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if l := s.DeviceLink(&s.Groups[0]); l == nil || l.Name != "ble" {
		t.Errorf("lamp's link = %+v, want its group's ble", l)
	}
	if l := s.DeviceLink(&s.Groups[1]); l == nil || l.Name != "lte-m" {
		t.Errorf("sensor's link = %+v, want the connections' lte-m", l)
	}
	s.Connections.Mode = PerHome
	if l := s.DeviceLink(&s.Groups[1]); l != nil {
		t.Errorf("with shared connections a device has link %+v, want none", l)
	}
}

func TestConnectionsSessionRateAndSources(t *testing.T) {
	s, err := Parse("c.yaml", []byte(doc(
		"name: c",
		"connections:",
		"  mode: per-device",
		"  session: persistent",
		"  connect_rate: 1000",
		"  source_addresses: [127.0.0.1, 127.0.0.2, '::1']",
		"devices: [{kind: lamp}]",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Connections
	if !c.Persistent || c.ConnectRate != 1000 || len(c.SourceAddresses) != 3 || c.SourceAddresses[1].String() != "127.0.0.2" {
		t.Errorf("connections %+v", c)
	}
	_, err = Parse("bad.yaml", []byte(doc(
		"name: c",
		"connections:",
		"  mode: per-device",
		"  session: sticky",
		"  connect_rate: 0",
		"  source_addresses: [127.0.0.1, localhost]",
		"devices: [{kind: lamp}]",
	)), testKinds)
	want := strings.Join([]string{
		`bad.yaml:4: connections.session: expected clean or persistent, got "sticky"`,
		`bad.yaml:5: connections.connect_rate: 0 is out of range (connections per second, > 0 and <= 1000000)`,
		`bad.yaml:6: connections.source_addresses[1]: expected an IP address such as 127.0.0.2, got "localhost"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestGroupInSomeHomes(t *testing.T) {
	s, err := Parse("h.yaml", []byte(doc(
		"name: h",
		"homes: 10",
		"connections: per-device",
		"devices:",
		"  - {kind: lamp, count: 3}",
		"  - {kind: lamp, name: backend, count: 2, homes: 1}",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DeviceCount(); got != 32 {
		t.Errorf("%d devices, want 30 lamps and 2 backends", got)
	}
	if g := &s.Groups[1]; !g.InHome(1) || g.InHome(2) || !s.Groups[0].InHome(10) {
		t.Errorf("InHome wrong for %+v", g)
	}
	_, err = Parse("bad.yaml", []byte(doc(
		"name: h",
		"homes: 2",
		"devices:",
		"  - {kind: lamp, homes: 3}",
	)), testKinds)
	if want := "bad.yaml:4: devices[0].homes: 3 is more than the scenario's 2 homes"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestConnectionsClient(t *testing.T) {
	for _, c := range []struct {
		conns, mode, client string
	}{
		{"{client: lean}", PerHome, ClientLean},
		{"{pool: 3, client: paho}", Pool, ClientPaho},
		{"{mode: per-device, client: lean}", PerDevice, ClientLean},
		{"per-device", PerDevice, ""},
	} {
		s, err := Parse("c.yaml", []byte(doc("name: c", "connections: "+c.conns, "devices: [{kind: lamp}]")), testKinds)
		if err != nil {
			t.Fatalf("%s: %v", c.conns, err)
		}
		if got := s.Connections; got.Mode != c.mode || got.Client != c.client {
			t.Errorf("%s: mode %q client %q, want %q %q", c.conns, got.Mode, got.Client, c.mode, c.client)
		}
	}
	_, err := Parse("bad.yaml", []byte(doc(
		"name: c",
		"connections:",
		"  mode: per-device",
		"  client: lean2",
		"devices: [{kind: lamp}]",
	)), testKinds)
	want := `bad.yaml:4: connections.client: expected paho or lean, got "lean2"; did you mean "lean"?`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestConnectionsProtocol(t *testing.T) {
	s, err := Parse("c.yaml", []byte(doc("name: c", "connections: {protocol: 5}", "devices: [{kind: lamp}]")), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Connections; c.Protocol != Protocol5 || c.Mode != PerHome {
		t.Errorf("connections %+v, want protocol 5 per home", c)
	}
	for conns, want := range map[string]string{
		"{protocol: 4}":               `bad.yaml:2: connections.protocol: expected 3.1.1 or 5, got "4"`,
		"{protocol: 5, client: paho}": `bad.yaml:2: connections.protocol: MQTT 5 needs client: lean (paho speaks 3.1.1 here)`,
	} {
		_, err := Parse("bad.yaml", []byte(doc("name: c", "connections: "+conns, "devices: [{kind: lamp}]")), testKinds)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got\n%v\nwant\n%s", conns, err, want)
		}
	}
}
