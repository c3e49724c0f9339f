package scenario

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOverrides(t *testing.T) {
	file := doc("name: o", "broker: tcp://file:1883", "duration: 1m", "day: 10m", "seed: 3", "devices: [{kind: lamp}]")
	dur, day, seed := 5*time.Second, 2*time.Second, uint64(7)
	s, err := parse("o.yaml", []byte(file), testKinds, Overrides{Broker: "ws://flag:8080/mqtt", Duration: &dur, Day: &day, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	if s.Broker != "ws://flag:8080/mqtt" || s.Duration != dur || s.Day != day || s.Seed != seed {
		t.Errorf("overrides not applied: broker %s, duration %v, day %v, seed %d", s.Broker, s.Duration, s.Day, s.Seed)
	}
	// The zero Overrides keeps the file's values.
	if s, err = parse("o.yaml", []byte(file), testKinds, Overrides{}); err != nil || s.Broker != "tcp://file:1883" || s.Seed != 3 {
		t.Errorf("zero overrides changed the file: %+v, %v", s, err)
	}
	// A flag's value replaces the file's before checking, so a bad value in the file that a
	// flag replaces is not reported.
	bad := doc("name: o", "day: 0.5s", "devices: [{kind: lamp}]")
	if _, err := parse("o.yaml", []byte(bad), testKinds, Overrides{Day: &day}); err != nil {
		t.Errorf("the flag's day did not replace the file's: %v", err)
	}
}

// An override is checked by the file's rules, and its problems are named after the flag.
func TestOverrideProblems(t *testing.T) {
	day, neg := 500*time.Millisecond, -time.Second
	file := doc("name: o", "homes: 0", "devices: [{kind: lamp}]")
	_, err := parse("o.yaml", []byte(file), testKinds, Overrides{Broker: "http://x", Day: &day, Duration: &neg})
	want := doc(
		`o.yaml: --broker: "http://x" has unsupported scheme "http" (`+wantBroker+`)`,
		`o.yaml: --duration: -1s is out of range (>= 0; 0 runs until interrupted)`,
		`o.yaml: --day: 500ms is out of range (0 for real time, or >= 1s)`,
		`o.yaml:2: homes: 0 is out of range (1..100000)`,
	)
	if err == nil || err.Error()+"\n" != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoadWith(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(path, []byte(doc("name: w", "devices: [{kind: lamp}]")), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadWith(path, testKinds, Overrides{Broker: "mqtts://b"})
	if err != nil || s.Broker != "mqtts://b" || s.File != path {
		t.Errorf("LoadWith = %+v, %v", s, err)
	}
}
