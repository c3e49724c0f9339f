package scenario

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMQTT5Settings reads a group's user properties and message expiry and the
// connections' session expiry, and expands the properties per device.
func TestMQTT5Settings(t *testing.T) {
	s, err := Parse("m.yaml", []byte(doc(
		"name: m",
		"homes: 2",
		"connections: {protocol: 5, session: persistent, session_expiry: 1h, mode: per-device}",
		"devices:",
		"  - kind: lamp",
		"    name: hall",
		`    user_properties: {site: "home-{home}", dev: "{id}", kind: "{kind}", rev: 3}`,
		"    message_expiry: 30s",
		"  - kind: sensor",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if s.Connections.SessionExpiry != time.Hour {
		t.Errorf("session expiry %v, want 1h", s.Connections.SessionExpiry)
	}
	g := s.Groups[0]
	if g.MessageExpiry != 30*time.Second {
		t.Errorf("message expiry %v, want 30s", g.MessageExpiry)
	}
	want := []UserProperty{{"site", "home-2"}, {"dev", "hall-3"}, {"kind", "lamp"}, {"rev", "3"}}
	if got := g.DeviceUserProperties(2, 3); !reflect.DeepEqual(got, want) {
		t.Errorf("device properties %v, want %v (in the order written)", got, want)
	}
	if got := s.Groups[1].DeviceUserProperties(1, 1); got != nil {
		t.Errorf("a group without properties: %v", got)
	}
	if uses := s.MQTT5Uses(); !strings.Contains(uses, "m.yaml:5: hall user_properties") || !strings.Contains(uses, "session_expiry") {
		t.Errorf("MQTT5Uses = %q", uses)
	}
}

// TestMQTT5SettingsErrors checks each bad MQTT 5 setting is refused at its line.
func TestMQTT5SettingsErrors(t *testing.T) {
	for _, tt := range []struct {
		name, conns, group, want string
	}{
		{"not a mapping", "{protocol: 5}", "user_properties: [a, b]", `m.yaml:4: devices[0].user_properties: expected a mapping of user property names to values, such as {site: "{home}", dev: "{id}"}, got a list`},
		{"unknown placeholder", "{protocol: 5}", `user_properties: {site: "{hom}"}`, `m.yaml:4: devices[0].user_properties.site: unknown placeholder "{hom}" (known: {id}, {home}, {kind}); did you mean "{home}"?`},
		{"unclosed", "{protocol: 5}", `user_properties: {site: "{home"}`, `m.yaml:4: devices[0].user_properties.site: "{home" has a "{" that is not closed (placeholders look like {id})`},
		{"not a text", "{protocol: 5}", "user_properties: {site: [1]}", `m.yaml:4: devices[0].user_properties.site: expected a text value, got a list`},
		{"3.1.1", "{protocol: 3.1.1}", "user_properties: {a: b}", `m.yaml:4: devices[0].user_properties: needs MQTT 5, but the connections speak MQTT 3.1.1 (connections.protocol, line 2)`},
		{"paho", "{client: paho}", "message_expiry: 10s", `m.yaml:4: devices[0].message_expiry: needs MQTT 5, but the paho client speaks MQTT 3.1.1 here (connections.client, line 2)`},
		{"expiry too short", "{protocol: 5}", "message_expiry: 10ms", `m.yaml:4: devices[0].message_expiry: 10ms is out of range (1s to 1193046h28m14s; whole seconds, rounded up)`},
		{"session expiry over 3.1.1", "{protocol: 3.1.1, session: persistent, session_expiry: 1h}", "qos: 1", `m.yaml:2: connections.session_expiry: needs protocol: 5 on the lean client (MQTT 3.1.1 sessions have no expiry)`},
		{"session expiry without persistence", "{protocol: 5, session_expiry: 1h}", "qos: 1", `m.yaml:2: connections.session_expiry: goes with session: persistent (a clean session ends with its connection)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(doc("name: m", "connections: "+tt.conns, "devices:", "  - {kind: lamp, "+tt.group+"}")), testKinds)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}
