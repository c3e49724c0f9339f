package link

import (
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProfilesValid(t *testing.T) {
	ps := Profiles()
	for _, name := range []string{"lan", "wifi", "ble", "lte-m", "nb-iot", "satellite"} {
		p, ok := ps[name]
		if !ok {
			t.Errorf("profile %q missing", name)
			continue
		}
		if p.Name != name {
			t.Errorf("profile %q has Name %q", name, p.Name)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("profile %q: %v", name, err)
		}
		if p.UpBytesPerSec <= 0 || p.DownBytesPerSec <= 0 || p.Latency <= 0 {
			t.Errorf("profile %q should set bandwidth and latency: %+v", name, p)
		}
	}
	ps["lan"] = Profile{}
	if Profiles()["lan"].Name != "lan" {
		t.Error("Profiles shares its map between calls")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		p    Profile
		want []string // substrings of the error; none means valid
	}{
		{Profile{}, nil},
		{Profile{UpBytesPerSec: 1, DownBytesPerSec: 1e9, Latency: time.Minute, Jitter: time.Minute}, nil},
		{Profile{OutageEvery: time.Second, OutageFor: 24 * time.Hour}, nil},
		{Profile{UpBytesPerSec: 0.5}, []string{"up_bytes_per_sec"}},
		{Profile{DownBytesPerSec: 2e9}, []string{"down_bytes_per_sec"}},
		{Profile{UpBytesPerSec: math.NaN(), DownBytesPerSec: math.Inf(1)}, []string{"up_bytes_per_sec", "down_bytes_per_sec"}},
		{Profile{UpBytesPerSec: -1}, []string{"up_bytes_per_sec"}},
		{Profile{Latency: -time.Millisecond}, []string{"latency"}},
		{Profile{Jitter: 2 * time.Minute}, []string{"jitter"}},
		{Profile{OutageEvery: time.Minute}, []string{"set both or neither"}},
		{Profile{OutageFor: time.Minute}, []string{"set both or neither"}},
		{Profile{OutageEvery: time.Millisecond, OutageFor: time.Second}, []string{"outage_every", "below the minimum"}},
		{Profile{OutageEvery: time.Minute, OutageFor: 25 * time.Hour}, []string{"outage_for"}},
		{Profile{Name: "bad", UpBytesPerSec: -1, Latency: -1, Jitter: -1}, []string{"link profile bad", "up_bytes_per_sec", "latency", "jitter"}},
	} {
		err := tc.p.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%+v: unexpected error %v", tc.p, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: no error, want %q", tc.p, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", tc.p, err, w)
			}
		}
	}
}

func TestLookup(t *testing.T) {
	base := Profiles()["nb-iot"]
	p, err := Lookup("nb-iot", Profile{Latency: 2 * time.Second, UpBytesPerSec: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.Name = "nb-iot*" // changed, and not renamed: not the stock profile
	want.Latency, want.UpBytesPerSec = 2*time.Second, 1000
	if p != want {
		t.Errorf("Lookup = %+v, want %+v", p, want)
	}
	if p, _ := Lookup("wifi", Profile{}); p != Profiles()["wifi"] {
		t.Errorf("zero override changed the profile: %+v", p)
	}
	// An override equal to the profile's own value changes nothing, so keeps the name.
	if p, _ := Lookup("wifi", Profile{Latency: Profiles()["wifi"].Latency}); p.Name != "wifi" {
		t.Errorf("a no-op override renamed the profile to %q", p.Name)
	}
	if p, _ := Lookup("wifi", Profile{Name: "attic", Latency: time.Second}); p.Name != "attic" || p.Latency != time.Second {
		t.Errorf("named override = %+v, want name attic and latency 1s", p)
	}
	if _, err := Lookup("3g", Profile{}); err == nil || !strings.Contains(err.Error(), "lte-m") {
		t.Errorf("unknown profile: err = %v, want the known names listed", err)
	}
	if _, err := Lookup("ble", Profile{Jitter: time.Hour}); err == nil || !strings.Contains(err.Error(), "jitter") {
		t.Errorf("invalid override: err = %v", err)
	}
}

func TestProfileYAML(t *testing.T) {
	src := `
name: hub
up_bytes_per_sec: 16000
down_bytes_per_sec: 32000
latency: 8ms
jitter: 1.5s
outage_every: 10m
outage_for: 5s
`
	var p Profile
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		t.Fatal(err)
	}
	want := Profile{Name: "hub", UpBytesPerSec: 16000, DownBytesPerSec: 32000, Latency: 8 * time.Millisecond,
		Jitter: 1500 * time.Millisecond, OutageEvery: 10 * time.Minute, OutageFor: 5 * time.Second}
	if p != want {
		t.Errorf("decoded %+v, want %+v", p, want)
	}
	out, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "latency: 8ms") {
		t.Errorf("durations should encode as strings:\n%s", out)
	}
}
