package topic

import (
	"errors"
	"strings"
	"testing"
)

// matchCases holds every example of MQTT 3.1.1 §4.7.1–§4.7.3 (repeated in MQTT 5.0 §4.7)
// and of the shared subscriptions of MQTT 5.0 §4.8.2, plus edge cases of our own.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	// §4.7.1.2 Multi-level wildcard.
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/#", "sport", true}, // "also matches the singular sport"
	{"#", "sport/tennis/player1", true},
	{"#", "/", true},
	{"sport/tennis/#", "sport/tennis", true},
	{"sport/tennis/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},

	// §4.7.1.3 Single-level wildcard.
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "sport", true},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis", true},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport/tennis/player2", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},

	// §4.7.2 Topics beginning with $.
	{"#", "$SYS/monitor/Clients", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"+", "$SYS", false},
	{"#", "$", false},
	{"$SYS/+/Clients", "$SYS/monitor/Clients", true},
	{"home/#", "home/$x", true}, // only a leading $ is special

	// §4.7.3 Topic semantic and usage: case sensitive, spaces allowed, '/' makes levels.
	{"ACCOUNTS", "Accounts", false},
	{"Accounts payable", "Accounts payable", true},
	{"/finance", "/finance", true},
	{"/finance", "finance", false},
	{"finance/", "finance", false},
	{"finance/#", "finance/", true},
	{"/", "/", true},
	{"+/+", "/", true},
	{"+", "/", false},
	{"a//b", "a//b", true},
	{"a/+/b", "a//b", true},

	// MQTT 5.0 §4.8.2 Shared subscriptions match as their inner filter.
	{"$share/consumer1/sport/tennis/+", "sport/tennis/player1", true},
	{"$share/consumer2/sport/tennis/+", "sport/tennis/player1", true},
	{"$share/consumer1/sport/tennis/+", "sport/tennis", false},
	{"$share/consumer1//finance", "/finance", true},
	{"$share/consumer1/+/+", "/finance", true},
	{"$share/g/#", "anything/at/all", true},
	{"$share/g/#", "$SYS/broker/uptime", false},
	{"$share/g/$SYS/#", "$SYS/broker/uptime", true},
	{"$share/g", "g", false},
	{"$share//x", "x", false},
	{"$share/g/x", "$share/g/x", false},
	{"$share/a/$share/b/c", "$share/b/c", true}, // one level of "$share/" is removed
	{"$share/a/$share/b/c", "c", false},
	{"$share/", "", false},
	{"$share/g/", "", true}, // invalid filter, but defined: the empty inner filter

	// Plain literal matching.
	{"home/1/bulb/bulb-1/set", "home/1/bulb/bulb-1/set", true},
	{"home/1/bulb/bulb-1/set", "home/1/bulb/bulb-1/se", false},
	{"home/1/bulb/bulb-1/se", "home/1/bulb/bulb-1/set", false},
	{"home/1", "home/1/bulb", false},
	{"home/1/bulb", "home/1", false},
	{"home/+/bulb/+/set", "home/12/bulb/b-3/set", true},
	{"home/+/+/+/set", "home/12/bulb/b-3/state", false},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		if got := refMatch(c.filter, c.topic); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (the reference is wrong)", c.filter, c.topic, got, c.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	cases := []struct {
		filter string
		want   error // nil when valid
	}{
		// §4.7.1.2
		{"sport/tennis/player1/#", nil},
		{"sport/#", nil},
		{"#", nil},
		{"sport/tennis/#", nil},
		{"sport/tennis#", ErrMultiLevel},
		{"sport/tennis/#/ranking", ErrMultiLevel},
		{"#/", ErrMultiLevel},
		{"##", ErrMultiLevel},
		// §4.7.1.3
		{"+", nil},
		{"+/tennis/#", nil},
		{"sport+", ErrSingleLevel},
		{"sport/+/player1", nil},
		{"+/+", nil},
		{"/+", nil},
		{"++", ErrSingleLevel},
		{"a/+b/c", ErrSingleLevel},
		// §4.7.3
		{"/", nil},
		{"//", nil},
		{"Accounts payable", nil},
		{"$SYS/#", nil},
		{"", ErrEmpty},
		{"a\x00b", ErrNUL},
		{"a/\xff", ErrUTF8},
		{"a/\xed\xa0\x80", ErrUTF8}, // U+D800, a surrogate (§1.5.3)
		{"température/°C", nil},
		{strings.Repeat("a", MaxLen), nil},
		{strings.Repeat("a", MaxLen+1), ErrTooLong},
		// MQTT 5.0 §4.8.2
		{"$share/consumer1/sport/tennis/+", nil},
		{"$share/consumer1//finance", nil},
		{"$share/g/#", nil},
		{"$share/g", ErrShare},
		{"$share/g/", ErrShare},
		{"$share//x", ErrShare},
		{"$share/g+/x", ErrShare},
		{"$share/#/x", ErrShare},
		{"$share/g/a/#/b", ErrMultiLevel},
		{"$share/g/a+", ErrSingleLevel},
		{"$share/backend/t/#", nil},
		{"$share/g/$share/h/x", nil},
		{"$share/", ErrShare},
		{"$share/g/x/#/y", ErrMultiLevel},
		{"$share", nil},     // not a shared subscription, just a filter starting with $
		{"$SHARE/g/x", nil}, // case-sensitive prefix: a plain filter
		{"$shared/x", nil},
	}
	for _, c := range cases {
		err := ValidFilter(c.filter)
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("ValidFilter(%.40q) = %v, want %v", c.filter, err, c.want)
		}
	}
}

func TestValidName(t *testing.T) {
	cases := []struct {
		topic string
		want  error
	}{
		{"sport/tennis/player1", nil},
		{"/finance", nil},
		{"finance/", nil},
		{"/", nil},
		{"$SYS/broker/uptime", nil},
		{"Accounts payable", nil},
		{"", ErrEmpty},
		{"sport/#", ErrWildcard},
		{"sport/+/x", ErrWildcard},
		{"sport+", ErrWildcard},
		{"a\x00", ErrNUL},
		{"\xc3", ErrUTF8},
		{strings.Repeat("x", MaxLen), nil},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
	}
	for _, c := range cases {
		err := ValidName(c.topic)
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("ValidName(%.40q) = %v, want %v", c.topic, err, c.want)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	err := ValidFilter("sport/tennis/#/ranking")
	want := `invalid topic filter "sport/tennis/#/ranking": '#' must be a whole level and the last one, as in "a/b/#"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	err = ValidName(strings.Repeat("a", MaxLen+1))
	if err == nil || !strings.Contains(err.Error(), "(65536 bytes)") || len(err.Error()) > 200 {
		t.Errorf("long name: got %.300v", err)
	}
	err = ValidName(strings.Repeat("€", MaxLen)) // 3 bytes each: byte 80 is inside one
	if err == nil || strings.Contains(err.Error(), `\x`) || !strings.Contains(err.Error(), "(196605 bytes)") {
		t.Errorf("long name of 3-byte characters: got %.300v", err)
	}
}

func TestSharedFilter(t *testing.T) {
	cases := []struct {
		f, group, filter string
		ok               bool
	}{
		{"$share/backend/t/#", "backend", "t/#", true},
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true},
		{"$share/g//finance", "g", "/finance", true},
		{"$share/g/$share/h/x", "g", "$share/h/x", true},
		{"$share/g+/x", "g+", "x", true}, // splits; ValidFilter rejects the group
		{"$share/g/", "g", "", true},     // splits; ValidFilter rejects the empty filter
		{"$share/g", "", "", false},
		{"$share//x", "", "", false},
		{"$share/", "", "", false},
		{"$share", "", "", false},
		{"$SHARE/g/x", "", "", false},
		{"t/#", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		group, filter, ok := SharedFilter(c.f)
		if group != c.group || filter != c.filter || ok != c.ok {
			t.Errorf("SharedFilter(%q) = %q, %q, %v; want %q, %q, %v", c.f, group, filter, ok, c.group, c.filter, c.ok)
		}
	}
	err := ValidFilter("$share/g#/x")
	want := `invalid topic filter "$share/g#/x": a shared subscription must be "$share/{group}/{filter}", with a non-empty group free of "+" and "#"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// refMatch is the obvious implementation of Match, splitting both strings into levels. It
// defines Match's behaviour on any input, valid or not.
func refMatch(filter, topic string) bool {
	if strings.HasPrefix(filter, SharePrefix) {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 || parts[1] == "" {
			return false
		}
		filter = parts[2]
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "#") || strings.HasPrefix(filter, "+")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// refShared reports whether filter splits as a shared subscription, by splitting it.
func refShared(filter string) bool {
	parts := strings.SplitN(filter, "/", 3)
	return len(parts) == 3 && parts[0] == "$share" && parts[1] != ""
}

func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.filter, c.topic)
	}
	f.Add("a/#/b", "a")
	f.Add("+/#", "$")
	f.Add("", "")
	f.Add("$share/", "")
	f.Add("$share/g/$share/h/#", "$share/h/x")
	f.Add("$share/0/$share/", "")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := Match(filter, topic)
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		// A valid topic name always matches itself as a filter and is matched by "#"
		// unless it starts with '$'.
		if ValidName(topic) == nil {
			if !Match(topic, topic) && !strings.HasPrefix(topic, SharePrefix) {
				t.Fatalf("valid name %q does not match itself", topic)
			}
			if Match("#", topic) == strings.HasPrefix(topic, "$") {
				t.Fatalf(`Match("#", %q) = %v`, topic, !strings.HasPrefix(topic, "$"))
			}
		}
		// A shared subscription matches as its inner filter; when it is valid, so are
		// its parts.
		group, inner, ok := SharedFilter(filter)
		if ok != refShared(filter) {
			t.Fatalf("SharedFilter(%q) ok = %v, reference says %v", filter, ok, !ok)
		}
		if ok {
			if SharePrefix+group+"/"+inner != filter {
				t.Fatalf("SharedFilter(%q) = %q, %q: does not rebuild the filter", filter, group, inner)
			}
			if !strings.HasPrefix(inner, SharePrefix) && got != Match(inner, topic) {
				t.Fatalf("Match(%q, %q) = %v but Match(%q, ...) = %v", filter, topic, got, inner, !got)
			}
		}
		// (An inner filter starting with "$share/" is literal, so ValidFilter, which would
		// split it again, does not apply to it.)
		if err := ValidFilter(filter); err == nil && strings.HasPrefix(filter, SharePrefix) {
			if !ok || inner == "" || strings.ContainsAny(group, "+#/") ||
				(!strings.HasPrefix(inner, SharePrefix) && ValidFilter(inner) != nil) {
				t.Fatalf("ValidFilter accepts %q, whose parts %q, %q are not valid", filter, group, inner)
			}
		}
	})
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range matchCases {
			Match(c.filter, c.topic)
			SharedFilter(c.filter)
		}
	})
	if allocs != 0 {
		t.Errorf("Match and SharedFilter allocate %v times per run of the table; want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	benches := []struct{ name, filter, topic string }{
		{"literal", "home/12/thermostat/thermostat-1/set", "home/12/thermostat/thermostat-1/set"},
		{"plus", "home/+/thermostat/+/set", "home/12/thermostat/thermostat-1/set"},
		{"hash", "home/12/#", "home/12/thermostat/thermostat-1/state"},
		{"miss", "home/13/#", "home/12/thermostat/thermostat-1/state"},
		{"share", "$share/hub/home/+/+/+/state", "home/12/thermostat/thermostat-1/state"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Match(bc.filter, bc.topic)
			}
		})
	}
}
