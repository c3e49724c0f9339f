package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
)

// doc joins lines into a file, so tests can count lines by eye.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // every line of the error, in order
	}{
		{
			name: "syntax error",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"   count: 2",
			),
			want: []string{`bad.yaml:3: syntax error: did not find expected '-' indicator`},
		},
		{
			name: "syntax error without a line from the parser",
			file: "name: x\ndevices: [{kind: lamp}]\ndescription: \x01\n",
			want: []string{`bad.yaml:3: syntax error: control characters are not allowed`},
		},
		{
			name: "unknown anchor",
			file: doc("name: x", "devices:", "  - *lamp"),
			want: []string{`bad.yaml:3: syntax error: unknown anchor 'lamp' referenced`},
		},
		{
			name: "empty file",
			file: "# nothing here\n",
			want: []string{`bad.yaml: the file is empty; a scenario needs at least a name and devices`},
		},
		{
			name: "two documents",
			file: doc("name: x", "devices: [{kind: lamp}]", "---", "name: y"),
			want: []string{`bad.yaml:3: a second YAML document starts here; a scenario file holds exactly one`},
		},
		{
			name: "bad thresholds",
			file: doc(
				"name: x",
				"devices: [{kind: lamp}]",
				"thresholds:",
				"  - latency_p99<50ms",
				"  - latency_p98<50ms",
				"  - [loss, 0]",
			),
			want: []string{
				`bad.yaml:5: thresholds[1]: threshold "latency_p98<50ms": unknown metric "latency_p98"; known metrics: ` + strings.Join(measure.KnownMetrics(), ", "),
				`bad.yaml:6: thresholds[2]: expected a threshold such as "loss==0", got a list`,
			},
		},
		{
			name: "thresholds not a list",
			file: doc("name: x", "devices: [{kind: lamp}]", "thresholds: loss==0"),
			want: []string{`bad.yaml:3: thresholds: expected a list such as ["latency_p99<50ms", "loss==0"], got "loss==0"`},
		},
		{
			name: "top level is not a mapping",
			file: doc("- kind: lamp"),
			want: []string{`bad.yaml:1: expected a mapping of scenario fields (name, devices, ...) at the top level, got a list`},
		},
		{
			name: "missing required fields",
			file: doc("description: nothing else"),
			want: []string{
				`bad.yaml:1: missing required field "name"`,
				`bad.yaml:1: missing required field "devices" (a list of device groups)`,
			},
		},
		{
			name: "empty devices",
			file: doc("name: x", "devices: []"),
			want: []string{`bad.yaml:2: devices: must list at least one device group`},
		},
		{
			name: "unknown top-level field",
			file: doc("name: x", "homse: 3", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: unknown field "homse" at the top level; did you mean "homes"?`},
		},
		{
			name: "unknown top-level field far from any",
			file: doc("name: x", "colour: red", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: unknown field "colour" at the top level; known fields: name, description, broker, duration, day, start, seed, homes, topic_prefix, connections, thresholds, devices`},
		},
		{
			name: "duplicate top-level field",
			file: doc("name: x", "homes: 2", "homes: 3", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:3: duplicate field "homes" at the top level (first set at line 2)`},
		},
		{
			name: "unknown group field",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: sensor",
				"  - kind: lamp",
				"    perod: 2s",
			),
			want: []string{`bad.yaml:5: unknown field "perod" in devices[1]; did you mean "period"?`},
		},
		{
			name: "unknown params field",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"    params:",
				"      brightnes: 50",
				"      schedule:",
				"        onn: \"07:00\"",
				"      scenes:",
				"        - name: a",
				"        - name: b",
				"          levle: 3",
				"      tags: {any: thing}",
			),
			want: []string{
				`bad.yaml:5: unknown field "brightnes" in devices[0].params; did you mean "brightness"?`,
				`bad.yaml:7: unknown field "onn" in devices[0].params.schedule; did you mean "on"?`,
				`bad.yaml:11: unknown field "levle" in devices[0].params.scenes[1]; did you mean "level"?`,
			},
		},
		{
			name: "params of a kind without params",
			file: doc("name: x", "devices:", "  - kind: sensor", "    params: {x: 1}"),
			want: []string{`bad.yaml:4: unknown field "x" in devices[0].params`},
		},
		{
			name: "wrong types",
			file: doc(
				"name: [x]",                // 1
				"homes: \"3\"",             // 2
				"seed: one",                // 3
				"duration: 2 minutes",      // 4
				"day: 10",                  // 5
				"start: 6am",               // 6
				"connections: per-host",    // 7
				"devices:",                 // 8
				"  - kind: lamp",           // 9
				"    count: 1.5",           // 10
				"    retained: yes",        // 11
				"    max_rate: fast",       // 12
				"    period: {s: 1}",       // 13
				"    params:",              // 14
				"      brightness: bright", // 15
				"      fade: 2 seconds",    // 16
				"      scenes: reading",    // 17
				"      schedule: [on]",     // 18
			),
			want: []string{
				`bad.yaml:1: name: expected a string, got a list`,
				`bad.yaml:2: homes: expected an integer, got "3"`,
				`bad.yaml:3: seed: expected a non-negative integer, got "one"`,
				`bad.yaml:4: duration: expected a duration like 90s, 2m or 1h30m, got "2 minutes"`,
				`bad.yaml:5: day: expected a duration like 90s, 2m or 1h30m, got 10 (missing unit)`,
				`bad.yaml:6: start: expected a time of day "HH:MM", got "6am"`,
				`bad.yaml:7: connections: expected per-device, per-home or {pool: N}, got "per-host"; did you mean "per-home"?`,
				`bad.yaml:10: devices[0].count: expected an integer, got 1.5`,
				`bad.yaml:11: devices[0].retained: expected true or false, got "yes"`,
				`bad.yaml:12: devices[0].max_rate: expected a number, got "fast"`,
				`bad.yaml:13: devices[0].period: expected a duration like 90s, 2m or 1h30m, got a mapping`,
				`bad.yaml:15: devices[0].params.brightness: expected an integer, got "bright"`,
				`bad.yaml:16: devices[0].params.fade: expected a duration like 90s, 2m or 1h30m, got "2 seconds"`,
				`bad.yaml:17: devices[0].params.scenes: expected a list, got "reading"`,
				`bad.yaml:18: devices[0].params.schedule: expected a mapping, got a list`,
			},
		},
		{
			name: "wrong scalar types in params",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"    params:",
				"      brightness: bright",
				"      fade: 2 seconds",
				"      scenes:",
				"        - {name: a, level: high}",
			),
			want: []string{
				`bad.yaml:5: devices[0].params.brightness: expected an integer, got "bright"`,
				`bad.yaml:6: devices[0].params.fade: expected a duration like 90s, 2m or 1h30m, got "2 seconds"`,
				`bad.yaml:8: devices[0].params.scenes[0].level: expected an integer, got "high"`,
			},
		},
		{
			name: "range limits",
			file: doc(
				"name: x",               // 1
				"homes: 0",              // 2
				"duration: -1m",         // 3
				"day: 0.5s",             // 4
				"start: \"25:00\"",      // 5
				"seed: -1",              // 6
				"connections:",          // 7
				"  pool: 0",             // 8
				"devices:",              // 9
				"  - kind: lamp",        // 10
				"    count: 0",          // 11
				"    period: -1s",       // 12
				"    qos: 3",            // 13
				"    max_rate: 0",       // 14
				"  - kind: sensor",      // 15
				"    period: 0.5ms",     // 16
				"    max_rate: 1000001", // 17
				"    count: 1000001",    // 18
			),
			want: []string{
				`bad.yaml:2: homes: 0 is out of range (1..100000)`,
				`bad.yaml:3: duration: -1m is out of range (>= 0; 0 runs until interrupted)`,
				`bad.yaml:4: day: 0.5s is out of range (0 for real time, or >= 1s)`,
				`bad.yaml:5: start: 25:00 is out of range (00:00..23:59)`,
				`bad.yaml:6: seed: -1 is out of range (0..18446744073709551615)`,
				`bad.yaml:8: connections.pool: 0 is out of range (1..100000)`,
				`bad.yaml:11: devices[0].count: 0 is out of range (1..1000000)`,
				`bad.yaml:12: devices[0].period: -1s is out of range (0 for no telemetry, or >= 1ms)`,
				`bad.yaml:13: devices[0].qos: 3 is out of range (0..2)`,
				`bad.yaml:14: devices[0].max_rate: 0 is out of range (> 0 and <= 1000000 publishes per second)`,
				`bad.yaml:16: devices[1].period: 0.5ms is out of range (0 for no telemetry, or >= 1ms)`,
				`bad.yaml:17: devices[1].max_rate: 1000001 is out of range (> 0 and <= 1000000 publishes per second)`,
				`bad.yaml:18: devices[1].count: 1000001 is out of range (1..1000000)`,
			},
		},
		{
			name: "too many devices",
			file: doc(
				"name: x",
				"homes: 100000",
				"devices:",
				"  - {kind: lamp, count: 60}",
				"  - {kind: sensor, count: 41}",
			),
			want: []string{`bad.yaml:2: too many devices: 100000 homes × 101 devices per home = 10100000 (max 10000000)`},
		},
		{
			name: "names",
			file: doc(
				"name: Smart Home",
				"devices:",
				"  - {kind: lamp, name: _lamp}",
				"  - {kind: lamp, name: "+strings.Repeat("a", 65)+"}",
			),
			want: []string{
				`bad.yaml:1: name: "Smart Home" is not a valid name (lowercase letters, digits, '-' and '_', starting with a letter or digit; max 64)`,
				`bad.yaml:3: devices[0].name: "_lamp" is not a valid name (lowercase letters, digits, '-' and '_', starting with a letter or digit; max 64)`,
				`bad.yaml:4: devices[1].name: "` + strings.Repeat("a", 60) + `…" is too long (65 bytes, max 64)`,
			},
		},
		{
			name: "unknown and missing kind",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamb",
				"  - name: nokind",
				"  - kind: toaster",
			),
			want: []string{
				`bad.yaml:3: devices[0].kind: unknown kind "lamb" (known kinds: gadget, lamp, sensor); did you mean "lamp"?`,
				`bad.yaml:4: devices[1]: missing required field "kind" (known kinds: gadget, lamp, sensor)`,
				`bad.yaml:5: devices[2].kind: unknown kind "toaster" (known kinds: gadget, lamp, sensor)`,
			},
		},
		{
			name: "duplicate names",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"  - kind: lamp",
				"  - kind: sensor",
				"    name: lamp",
			),
			want: []string{
				`bad.yaml:4: devices[1].name: duplicate name "lamp", which defaults to the kind (already used by devices[0] at line 3); give the group a distinct name`,
				`bad.yaml:6: devices[2].name: duplicate name "lamp" (already used by devices[0] at line 3)`,
			},
		},
		{
			name: "broker",
			file: doc(
				"name: x",
				"broker: http://localhost:1883",
				"devices: [{kind: lamp}]",
			),
			want: []string{`bad.yaml:2: broker: "http://localhost:1883" has unsupported scheme "http" (want "embedded" or a URL scheme://host[:port] with scheme tcp, mqtt, ssl, tls, mqtts, ws or wss)`},
		},
		{
			name: "broker without scheme",
			file: doc("name: x", "broker: localhost:1883", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: broker: "localhost:1883" is not a broker URL (want "embedded" or a URL scheme://host[:port] with scheme tcp, mqtt, ssl, tls, mqtts, ws or wss)`},
		},
		{
			name: "broker typo",
			file: doc("name: x", "broker: embeded", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: broker: "embeded" is not a broker (want "embedded" or a URL scheme://host[:port] with scheme tcp, mqtt, ssl, tls, mqtts, ws or wss); did you mean "embedded"?`},
		},
		{
			name: "broker without host or with a bad port",
			file: doc("name: x", "broker: tcp://:1883", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: broker: "tcp://:1883" has no host (want "embedded" or a URL scheme://host[:port] with scheme tcp, mqtt, ssl, tls, mqtts, ws or wss)`},
		},
		{
			name: "broker port out of range",
			file: doc("name: x", "broker: mqtts://example.com:70000", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: broker: "mqtts://example.com:70000": port 70000 is out of range (1..65535)`},
		},
		{
			name: "connections",
			file: doc("name: x", "connections: pool", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: connections: a pool needs a size; write {pool: N} (N 1..100000)`},
		},
		{
			name: "connections mapping",
			file: doc("name: x", "connections: {poll: 3}", "devices: [{kind: lamp}]"),
			want: []string{
				`bad.yaml:2: unknown field "poll" in connections; did you mean "pool"?`,
				`bad.yaml:2: connections: missing field "pool" (the number of connections, 1..100000) or "mode" (per-device or per-home)`,
			},
		},
		{
			name: "connections with a link",
			file: doc(
				"name: x",                             // 1
				"connections:",                        // 2
				"  mode: per-hmoe",                    // 3
				"  pool: 2",                           // 4
				"  link: {profile: wifi, latncy: 1s}", // 5
				"devices: [{kind: lamp}]",             // 6
			),
			want: []string{
				`bad.yaml:3: connections.mode: expected per-device, per-home or pool, got "per-hmoe"; did you mean "per-home"?`,
				`bad.yaml:5: unknown field "latncy" in connections.link; did you mean "latency"?`,
			},
		},
		{
			name: "connections: a pool size with another mode, a pool without a size, a bad link",
			file: doc(
				"name: x",
				"connections: {mode: per-home, pool: 2, link: lora}",
				"devices: [{kind: lamp}]",
			),
			want: []string{
				`bad.yaml:2: connections.pool: a pool size goes with mode: pool (or no mode), not mode: per-home`,
				`bad.yaml:2: connections.link: unknown link profile "lora" (known: ble, lan, lte-m, nb-iot, satellite, wifi)`,
			},
		},
		{
			name: "connections: mode pool without a size, and an unknown field",
			file: doc("name: x", "connections: {mode: pool, lnk: wifi}", "devices: [{kind: lamp}]"),
			want: []string{
				`bad.yaml:2: unknown field "lnk" in connections; did you mean "link"?`,
				`bad.yaml:2: connections: mode: pool needs a size; add pool: N (N 1..100000)`,
			},
		},
		{
			name: "connections: a list",
			file: doc("name: x", "connections: [per-home]", "devices: [{kind: lamp}]"),
			want: []string{`bad.yaml:2: connections: expected per-device, per-home, {pool: N} or a mapping such as {mode: per-home, link: wifi}, got a list`},
		},
		{
			name: "a group's link with shared connections points at connections.link",
			file: doc(
				"name: x",
				"connections: {pool: 3, link: ble}",
				"devices:",
				"  - kind: lamp",
				"    link: wifi",
			),
			want: []string{`bad.yaml:5: devices[0].link: a group's link shapes each device's own connection and needs connections: per-device; to shape the shared connections, set the link there: connections: {pool: 3, link: ...}`},
		},
		{
			name: "a group's link is not judged against a broken connections",
			file: doc(
				"name: x",
				"connections: {mode: per-devcie}",
				"devices:",
				"  - kind: lamp",
				"    link: wifi",
			),
			want: []string{`bad.yaml:2: connections.mode: expected per-device, per-home or pool, got "per-devcie"; did you mean "per-device"?`},
		},
		{
			name: "wildcards in topics",
			file: doc(
				"name: x",
				"topic_prefix: \"site/#\"",
				"devices:",
				"  - kind: lamp",
				"    topic: \"lamps/+/{id}\"",
			),
			want: []string{
				`bad.yaml:2: topic_prefix: invalid topic name "site/#": a topic name must not contain the wildcards '+' or '#'`,
				`bad.yaml:5: devices[0].topic: invalid topic name "lamps/+/{id}": a topic name must not contain the wildcards '+' or '#'`,
			},
		},
		{
			name: "other bad topics",
			file: doc(
				"name: x",
				"devices:",
				"  - {kind: lamp, name: a, topic: \"\"}",
				"  - {kind: lamp, name: b, topic: \"$SYS/{id}\"}",
				"  - {kind: lamp, name: c, topic: \"x/{id\"}",
				"  - {kind: lamp, name: d, topic: \"x/id}\"}",
				"  - {kind: lamp, name: e, topic: \"x/\\0/{id}\"}",
			),
			want: []string{
				`bad.yaml:3: devices[0].topic: must not be empty`,
				`bad.yaml:4: devices[1].topic: "$SYS/{id}" starts with "$", which is reserved for broker topics such as $SYS`,
				`bad.yaml:5: devices[2].topic: "x/{id" has a "{" that is not closed (placeholders look like {id})`,
				`bad.yaml:6: devices[3].topic: "x/id}" has a "}" that was not opened (placeholders look like {id})`,
				`bad.yaml:7: devices[4].topic: invalid topic name "x/\x00/{id}": must not contain the NUL character U+0000`,
			},
		},
		{
			name: "unknown placeholders",
			file: doc(
				"name: x",
				"topic_prefix: \"home/{prefix}\"",
				"devices:",
				"  - kind: lamp",
				"    topic: \"{prefix}/{knd}/{id}/{color}\"",
			),
			want: []string{
				`bad.yaml:2: topic_prefix: unknown placeholder "{prefix}" (known: {home})`,
				`bad.yaml:5: devices[0].topic: unknown placeholder "{knd}" (known: {prefix}, {home}, {kind}, {name}, {id}, {n}); did you mean "{kind}"?`,
				`bad.yaml:5: devices[0].topic: unknown placeholder "{color}" (known: {prefix}, {home}, {kind}, {name}, {id}, {n})`,
			},
		},
		{
			name: "topics that are not unique",
			file: doc(
				"name: x",                        // 1
				"homes: 2",                       // 2
				"devices:",                       // 3
				"  - kind: lamp",                 // 4
				"    count: 3",                   // 5
				"    topic: \"{prefix}/lamp\"",   // 6
				"  - kind: sensor",               // 7
				"    topic: \"sensors/{id}\"",    // 8
				"  - kind: sensor",               // 9
				"    name: a",                    // 10
				"    topic: \"{prefix}/{n}\"",    // 11
				"  - kind: sensor",               // 12
				"    name: b",                    // 13
				"    topic: \"home/{home}/{n}\"", // 14
			),
			want: []string{
				`bad.yaml:6: devices[0].topic: "{prefix}/lamp" gives all 3 devices of the group in a home the same topic; include {id} or {n}`,
				`bad.yaml:8: devices[1].topic: "sensors/{id}" gives the devices of all 2 homes the same topics; include {prefix} or {home}`,
				`bad.yaml:14: devices[3].topic: "home/{home}/{n}" gives the same topics as the topic of devices[2] (line 9)`,
			},
		},
		{
			name: "prefix without home",
			file: doc(
				"name: x",
				"homes: 2",
				"topic_prefix: site",
				"devices:",
				"  - kind: lamp",
				"  - kind: sensor",
				"    topic: \"{prefix}/{home}/{id}\"",
			),
			want: []string{
				`bad.yaml:5: devices[0].topic: "{prefix}/{kind}/{id}" gives the devices of all 2 homes the same topics, because topic_prefix "site" has no {home}; add {home} to topic_prefix or to the topic`,
			},
		},
		{
			name: "topic too long once expanded",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"    count: 10",
				"    topic: \""+strings.Repeat("t", 65534)+"/{n}\"",
			),
			want: []string{
				`bad.yaml:5: devices[0].topic: "` + strings.Repeat("t", 60) + `…" expands to invalid topic name "` + strings.Repeat("t", 80) + `"... (65537 bytes): must be at most 65535 bytes`,
			},
		},
		{
			name: "param errors point at the field",
			file: doc(
				"name: x",                          // 1
				"devices:",                         // 2
				"  - kind: lamp",                   // 3
				"    name: a",                      // 4
				"    params:",                      // 5
				"      color: red",                 // 6
				"      brightness: 200",            // 7
				"  - kind: lamp",                   // 8
				"    name: b",                      // 9
				"    params:",                      // 10
				"      schedule:",                  // 11
				"        off: \"23:00\"",           // 12
				"        on: never",                // 13
				"      scenes:",                    // 14
				"        - {name: x, level: 1}",    // 15
				"  - kind: lamp",                   // 16
				"    name: c",                      // 17
				"    params:",                      // 18
				"      scenes:",                    // 19
				"        - {name: x, level: 1}",    // 20
				"        - name: y",                // 21
				"          level: 101",             // 22
				"  - kind: lamp",                   // 23
				"    name: d",                      // 24
				"    params: {color: missing}",     // 25
				"  - kind: lamp",                   // 26
				"    name: e",                      // 27
				"    params: {color: ultraviolet}", // 28
				"  - kind: lamp",                   // 29
				"    name: f",                      // 30
				"    params: {color: panic}",       // 31
			),
			want: []string{
				`bad.yaml:7: devices[0].params.brightness: 200 is out of range (0..100)`,
				`bad.yaml:13: devices[1].params.schedule.on: must be HH:MM`,
				`bad.yaml:22: devices[2].params.scenes[1].level: must be at most 100`,
				`bad.yaml:25: devices[3].params.glow: is required with color missing`,
				`bad.yaml:26: devices[4]: lamp: ultraviolet needs period >= 1s`,
				`bad.yaml:29: devices[5]: kind "lamp" panicked while building a device: boom`,
			},
		},
		{
			name: "param error without a params block",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"    name: a",
			),
			want: nil, // defaults are valid
		},
		{
			name: "several problems at once",
			file: doc(
				"name: x",             // 1
				"homes: 0",            // 2
				"devices:",            // 3
				"  - kind: lamp",      // 4
				"    qos: 7",          // 5
				"    params:",         // 6
				"      brightness: 7", // 7
				"      glow: 1",       // 8
				"  - kind: bulb",      // 9
				"    count: -2",       // 10
			),
			want: []string{
				`bad.yaml:2: homes: 0 is out of range (1..100000)`,
				`bad.yaml:5: devices[0].qos: 7 is out of range (0..2)`,
				`bad.yaml:8: unknown field "glow" in devices[0].params; known fields: brightness, color, fade, schedule, scenes, tags`,
				`bad.yaml:9: devices[1].kind: unknown kind "bulb" (known kinds: gadget, lamp, sensor)`,
				`bad.yaml:10: devices[1].count: -2 is out of range (1..1000000)`,
			},
		},
		{
			name: "problems in a shared anchor are reported once",
			file: doc(
				"name: x",
				"devices:",
				"  - kind: lamp",
				"    name: a",
				"    params: &p",
				"      brightnes: 1",
				"  - kind: lamp",
				"    name: b",
				"    params: *p",
			),
			want: []string{`bad.yaml:6: unknown field "brightnes" in devices[0].params; did you mean "brightness"?`},
		},
		{
			name: "bad merge",
			file: doc(
				"name: x",
				"devices:",
				"  - <<: 3",
				"    kind: lamp",
			),
			want: []string{`bad.yaml:3: devices[0]: a merge key (<<) needs a mapping or a list of mappings, got 3`},
		},
		{
			name: "group is not a mapping",
			file: doc("name: x", "devices:", "  - lamp"),
			want: []string{`bad.yaml:3: devices[0]: expected a mapping with at least a kind, got "lamp"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("bad.yaml", []byte(tt.file), testKinds)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want\n%s", strings.Join(tt.want, "\n"))
			}
			if s != nil {
				t.Errorf("got a scenario along with the error")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors", err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if len(errs.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d", len(errs.Problems), len(tt.want))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("min.yaml", []byte(doc("name: min", "devices:", "  - kind: lamp", "  - kind: sensor")), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if s.File != "min.yaml" || s.Name != "min" || s.Description != "" || s.Broker != Embedded ||
		s.Duration != 0 || s.Day != 0 || s.Start != 0 || s.Seed != 1 || s.Homes != 1 ||
		s.TopicPrefix != DefaultTopicPrefix || !reflect.DeepEqual(s.Connections, Connections{Mode: PerHome}) {
		t.Errorf("scenario defaults wrong: %+v", s)
	}
	if len(s.Groups) != 2 {
		t.Fatalf("got %d groups, want 2", len(s.Groups))
	}
	g := s.Groups[0]
	if g.Kind != "lamp" || g.Name != "lamp" || g.Count != 1 || g.Period != 0 || g.QoS != 0 ||
		g.Retained || g.MaxRate != DefaultMaxRate || g.Topic != DefaultTopic || g.Line != 3 {
		t.Errorf("group defaults wrong: %+v", g)
	}
	p, ok := g.Params.(*lampParams)
	if !ok {
		t.Fatalf("params are %T, want *lampParams", g.Params)
	}
	if want := lampDefaults(); p.Brightness != want.Brightness || p.Color != want.Color || p.Fade != want.Fade || p.Schedule != want.Schedule {
		t.Errorf("params = %+v, want the defaults %+v", *p, want)
	}
	if _, ok := s.Groups[1].Params.(*sensorParams); !ok || s.Groups[1].Line != 4 {
		t.Errorf("sensor group = %+v", s.Groups[1])
	}
	// Nulls count as absent.
	s, err = Parse("null.yaml", []byte(doc("name: n", "homes:", "broker: ~", "devices:", "  - kind: lamp", "    params:")), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if s.Homes != 1 || s.Broker != Embedded || s.Groups[0].Params.(*lampParams).Brightness != 80 {
		t.Errorf("nulls not treated as absent: %+v", s)
	}
}

func TestParams(t *testing.T) {
	s, err := Parse("p.yaml", []byte(doc(
		"name: p",
		"devices:",
		"  - kind: lamp",
		"    params:",
		"      brightness: 30",
		"      schedule: {off: \"22:00\"}",
		"      scenes: [{name: a, level: 5}]",
		"      tags: {room: hall}",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Groups[0].Params.(*lampParams)
	if p.Brightness != 30 || p.Color != "warm" || p.Fade != time.Second ||
		p.Schedule != (lampSchedule{On: "18:00", Off: "22:00"}) ||
		len(p.Scenes) != 1 || p.Scenes[0] != (lampScene{Name: "a", Level: 5}) || p.Tags["room"] != "hall" {
		t.Errorf("params = %+v", *p)
	}
}

func TestConnections(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  Connections
	}{
		{"per-device", Connections{Mode: PerDevice}},
		{"per-home", Connections{Mode: PerHome}},
		{"{pool: 8}", Connections{Mode: Pool, PoolSize: 8}},
		{"\n  pool: 100000", Connections{Mode: Pool, PoolSize: 100000}},
	} {
		s, err := Parse("c.yaml", []byte("name: c\nconnections: "+tt.value+"\ndevices: [{kind: lamp}]\n"), testKinds)
		if err != nil {
			t.Errorf("%s: %v", tt.value, err)
			continue
		}
		if !reflect.DeepEqual(s.Connections, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.value, s.Connections, tt.want)
		}
	}
}

func TestBrokers(t *testing.T) {
	for _, b := range []string{"embedded", "tcp://localhost:1883", "mqtt://broker", "ssl://b.example.com:8883", "tls://b:8883", "mqtts://b", "ws://b:8080/mqtt", "wss://b/mqtt", "tcp://[::1]:1883"} {
		s, err := Parse("b.yaml", []byte("name: b\nbroker: \""+b+"\"\ndevices: [{kind: lamp}]\n"), testKinds)
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		if s.Broker != b {
			t.Errorf("broker = %q, want %q", s.Broker, b)
		}
	}
}

func TestDeviceConfig(t *testing.T) {
	s, err := Parse("d.yaml", []byte(doc(
		"name: d",
		"homes: 3",
		"topic_prefix: \"site/h{home}\"",
		"devices:",
		"  - kind: lamp",
		"    name: hall",
		"    count: 4",
		"    period: 1s",
		"    qos: 2",
		"    retained: true",
		"  - kind: sensor",
		"    count: 5",
		"    topic: \"s/{home}/{kind}/{name}/{n}/{id}\"",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.DeviceConfig(&s.Groups[0], 2, 3)
	want := sim.DeviceConfig{ID: "hall-3", Kind: "lamp", Home: 2, Prefix: "site/h2", Topic: "site/h2/lamp/hall-3", Period: time.Second, QoS: 2, Retained: true}
	if cfg.ID != want.ID || cfg.Kind != want.Kind || cfg.Home != want.Home || cfg.Prefix != want.Prefix ||
		cfg.Topic != want.Topic || cfg.Period != want.Period || cfg.QoS != want.QoS || cfg.Retained != want.Retained {
		t.Errorf("config = %+v\nwant %+v", cfg, want)
	}
	if got := s.DeviceConfig(&s.Groups[1], 2, 3).Topic; got != "s/2/sensor/sensor/3/sensor-3" {
		t.Errorf("topic = %q", got)
	}
	if n := s.DevicesPerHome(); n != 9 {
		t.Errorf("DevicesPerHome = %d, want 9", n)
	}
}

func TestExample(t *testing.T) {
	path := filepath.Join("testdata", "example.yaml")
	s, err := Load(path, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if s.File != path || s.Name != "smart-home" || !strings.HasPrefix(s.Description, "Three homes") ||
		s.Broker != "tcp://localhost:1883" || s.Duration != 2*time.Minute || s.Day != 2*time.Minute ||
		s.Start != 6*time.Hour || s.Seed != 42 || s.Homes != 3 || s.TopicPrefix != "home/{home}" ||
		!reflect.DeepEqual(s.Connections, Connections{Mode: Pool, PoolSize: 4}) {
		t.Errorf("scenario = %+v", s)
	}
	if len(s.Groups) != 4 {
		t.Fatalf("got %d groups, want 4", len(s.Groups))
	}
	living := s.Groups[0]
	if living.Kind != "lamp" || living.Name != "living-lamp" || living.Count != 2 || living.Period != 2*time.Second ||
		living.QoS != 1 || !living.Retained || living.MaxRate != 5 || living.Topic != "{prefix}/{kind}/{id}" {
		t.Errorf("living = %+v", living)
	}
	p := living.Params.(*lampParams)
	if p.Brightness != 60 || p.Color != "cool" || p.Fade != 500*time.Millisecond || p.Schedule.On != "07:00" ||
		p.Schedule.Off != "23:00" || len(p.Scenes) != 2 || p.Scenes[1].Level != 20 || p.Tags["room"] != "living" {
		t.Errorf("living params = %+v", *p)
	}
	// The merged group takes everything but its name from the first, with params of its own.
	kitchen := s.Groups[2]
	if kitchen.Name != "kitchen-lamp" || kitchen.Kind != "lamp" || kitchen.Count != 2 || !kitchen.Retained || kitchen.Params == living.Params {
		t.Errorf("kitchen = %+v", kitchen)
	}
	if kp := kitchen.Params.(*lampParams); kp.Brightness != 60 {
		t.Errorf("kitchen params = %+v", *kp)
	}
	if got := s.DeviceConfig(&s.Groups[1], 3, 4).Topic; got != "sensors/3/temp/4" {
		t.Errorf("temp topic = %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), testKinds)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}

func TestNoKinds(t *testing.T) {
	_, err := Parse("k.yaml", []byte("name: k\ndevices: [{kind: lamp}]\n"), nil)
	if err == nil || err.Error() != `k.yaml:2: devices[0].kind: unknown kind "lamp" (no kinds are registered)` {
		t.Errorf("err = %v", err)
	}
}

func TestErrorsSorted(t *testing.T) {
	e := &Errors{Problems: []Problem{{"f", 3, "c"}, {"f", 1, "a"}, {"f", 0, "whole file"}, {"f", 1, "b"}}}
	if got, want := e.Error(), "f: whole file\nf:1: a\nf:1: b\nf:3: c"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRequiredNull(t *testing.T) {
	_, err := Parse("n.yaml", []byte(doc("name:", "devices:")), testKinds)
	want := doc(
		`n.yaml:1: name: a value is required`,
		`n.yaml:2: devices: a value is required (a list of device groups)`,
	)
	if err == nil || err.Error()+"\n" != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	_, err = Parse("n.yaml", []byte(doc("name: n", "devices:", "  - kind:", "    count: 2")), testKinds)
	if want := `n.yaml:3: devices[0].kind: a value is required (known kinds: gadget, lamp, sensor)`; err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestGadgetParams(t *testing.T) {
	s, err := Parse("g.yaml", []byte(doc(
		"name: g",
		"devices:",
		"  - kind: gadget",
		"    params:",
		"      label: hall",
		"      level: 255",
		"      offset: -128",
		"      gain: 2.5",
		"      on: true",
		"      limit: 9",
		"      rgb: [1, 2, 3]",
		"      any: {a: [1, x]}",
		"      when: 2024-01-02T03:04:05Z",
		"      mode: slow",
		"      child: {depth: 3}",
		"      bonus: 4",
	)), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Groups[0].Params.(*gadgetParams)
	if p.Label != "hall" || p.Level != 255 || p.Offset != -128 || p.Gain != 2.5 || !p.On ||
		p.Limit == nil || *p.Limit != 9 || p.RGB != [3]int{1, 2, 3} || p.Mode != 2 ||
		p.Child == nil || p.Child.Depth != 3 || p.Extra["bonus"] != 4 ||
		!p.When.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("params = %+v", *p)
	}
	if m, ok := p.Any.(map[string]any); !ok || len(m["a"].([]any)) != 2 {
		t.Errorf("any = %#v", p.Any)
	}

	_, err = Parse("g.yaml", []byte(doc(
		"name: g",           // 1
		"devices:",          // 2
		"  - kind: gadget",  // 3
		"    params:",       // 4
		"      level: 256",  // 5
		"      offset: 1.5", // 6
		"      on: yes",     // 7
		"      gain: \"1\"", // 8
		"      rgb: [1, 2]", // 9
		"      mode: warp",  // 10
		"      limit: [1]",  // 11
		"      bonus: x",    // 12
		"      when: 5",     // 13
		"      child: 3",    // 14
	)), testKinds)
	want := doc(
		`g.yaml:5: devices[0].params.level: 256 is out of range (0..255)`,
		`g.yaml:6: devices[0].params.offset: expected an integer, got 1.5`,
		`g.yaml:7: devices[0].params.on: expected true or false, got "yes"`,
		`g.yaml:8: devices[0].params.gain: expected a number, got "1"`,
		`g.yaml:9: devices[0].params.rgb: expected a list of 3, got a list of 2`,
		`g.yaml:10: devices[0].params.mode: mode must be fast or slow, not "warp"`,
		`g.yaml:11: devices[0].params.limit: expected an integer, got a list`,
		`g.yaml:12: devices[0].params.bonus: expected an integer, got "x"`,
		`g.yaml:13: devices[0].params.when: parsing time "5" as "2006-01-02T15:04:05Z07:00": cannot parse "5" as "2006"`,
		`g.yaml:14: devices[0].params.child: expected a mapping, got 3`,
	)
	if err == nil || err.Error()+"\n" != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	// A params anchor that contains itself, through a type that can hold it.
	_, err := Parse("a.yaml", []byte(doc(
		"name: a",
		"devices:",
		"  - kind: lamp",
		"    params: &p",
		"      scenes: [*p]",
	)), testKinds)
	if err == nil {
		t.Fatal("no error for an anchor inside itself")
	}
	// A merge that includes the mapping it is in.
	_, err = Parse("m.yaml", []byte(doc("name: m", "devices:", "  - &g", "    <<: *g", "    kind: lamp")), testKinds)
	if want := `m.yaml:3: devices[0]: a merge key (<<) includes the mapping it is in`; err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	// Exponential expansion through aliases and merges stops with an error, quickly.
	var b strings.Builder
	b.WriteString("name: bomb\ndevices:\n  - &m0 {kind: lamp, name: m0}\n")
	for i := 1; i < 60; i++ {
		fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d], name: m%d}\n", i, i-1, i-1, i)
	}
	_, err = Parse("bomb.yaml", []byte(b.String()), testKinds)
	if err == nil || !strings.Contains(err.Error(), "expand this file too much") {
		t.Errorf("merge bomb: %v", err)
	}
	b.Reset()
	b.WriteString("name: bomb\ndevices:\n  - kind: lamp\n    params:\n      tags: &t0 {a: b}\n")
	for i := 1; i < 60; i++ {
		fmt.Fprintf(&b, "  - kind: lamp\n    name: l%d\n    params: &t%d {tags: *t%d, scenes: [{name: *t%d}, {name: *t%d}]}\n", i, i, i-1, i-1, i-1)
	}
	_, err = Parse("bomb.yaml", []byte(b.String()), testKinds)
	if err == nil {
		t.Errorf("alias bomb accepted")
	}
}

func TestManyGroups(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: big\nhomes: 10\ndevices:\n")
	const n = 20000
	for i := range n {
		fmt.Fprintf(&b, "  - {kind: lamp, name: l%d, count: 3, params: {brightness: %d, scenes: [{name: a, level: 1}]}}\n", i, i%100)
	}
	s, err := Parse("big.yaml", []byte(b.String()), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) != n || s.DevicesPerHome() != 3*n {
		t.Errorf("got %d groups, %d devices per home", len(s.Groups), s.DevicesPerHome())
	}
}

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Parse("example.yaml", data, testKinds); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDeviceConfigExpandsTopics(t *testing.T) {
	s := &Scenario{TopicPrefix: "h/{home}"}
	for tmpl, want := range map[string]string{
		DefaultTopic:                             "h/12/k/nm-34",
		"{prefix}/{n}/{name}/{kind}/{home}/{id}": "h/12/34/nm/k/12/nm-34",
		"{{id}}":                                 "{nm-34}",
		"{x}/{id":                                "{x}/{id",
		"a{n}b{n}c":                              "a34b34c",
		"{prefix}{prefix}":                       "h/12h/12",
		"":                                       "",
	} {
		g := &Group{Kind: "k", Name: "nm", Topic: tmpl}
		if got := s.DeviceConfig(g, 12, 34).Topic; got != want {
			t.Errorf("DeviceConfig topic for %q = %q, want %q", tmpl, got, want)
		}
	}
}
