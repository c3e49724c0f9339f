package scenario

import (
	"strings"
	"testing"
	"time"
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
		`bad.yaml:4: devices[0].link: a link shapes one device's connection; it needs connections: per-device, not per-home`,
		`bad.yaml:7: unknown field "latncy" in devices[1].link; did you mean "latency"?`,
		`bad.yaml:10: devices[2].link: `,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q; got:\n%s", want, got)
		}
	}
}
