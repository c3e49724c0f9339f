package scenario

import "testing"

func TestParseBroker(t *testing.T) {
	for _, tt := range []struct {
		in       string
		embedded bool
		tls      bool
	}{
		{"embedded", true, false},
		{"tcp://localhost:1883", false, false},
		{"mqtt://broker", false, false},
		{"ws://b:8080/mqtt", false, false},
		{"ssl://b.example.com:8883", false, true},
		{"tls://b:8883", false, true},
		{"mqtts://b", false, true},
		{"wss://b/mqtt", false, true},
		{"tcp://[::1]:1883", false, false},
	} {
		b, err := ParseBroker(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if b.Embedded() != tt.embedded || b.TLS() != tt.tls {
			t.Errorf("%s: embedded %v, TLS %v; want %v, %v", tt.in, b.Embedded(), b.TLS(), tt.embedded, tt.tls)
		}
		if !tt.embedded && b.URL.String() != tt.in {
			t.Errorf("%s: URL %s", tt.in, b.URL)
		}
	}
	for in, want := range map[string]string{
		"http://x":          `"http://x" has unsupported scheme "http" (` + wantBroker + `)`,
		"embeded":           `"embeded" is not a broker (` + wantBroker + `); did you mean "embedded"?`,
		"localhost:1883":    `"localhost:1883" is not a broker URL (` + wantBroker + `)`,
		"tcp://:1883":       `"tcp://:1883" has no host (` + wantBroker + `)`,
		"tcp://h:0":         `"tcp://h:0": port 0 is out of range (1..65535)`,
		"tcp://h:1883%zz/x": `"tcp://h:1883%zz/x" is not a valid URL (invalid port ":1883%zz" after host)`,
	} {
		if _, err := ParseBroker(in); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}
