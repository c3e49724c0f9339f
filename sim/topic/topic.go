// Package topic matches and validates MQTT topic names and topic filters.
//
// The rules are those of MQTT 3.1.1 §4.7 and MQTT 5.0 §4.7 (identical for this purpose):
// levels are separated by '/', '#' matches any number of levels including none (so
// "sport/#" also matches "sport"), '+' matches exactly one level (which may be empty), and a
// filter that starts with a wildcard never matches a topic name that starts with '$'
// (§4.7.2).
//
// A shared subscription "$share/{group}/{filter}" (MQTT 5.0 §4.8.2; mosquitto and mochi-mqtt
// also accept it from MQTT 3.1.1 clients) makes the broker deliver each message matching
// filter to one subscriber of the group instead of all of them. Match matches it as its
// inner filter, SharedFilter splits it, and ValidFilter checks both parts. The prefix is
// case-sensitive, as in MQTT 5.0 and mosquitto; mochi-mqtt v2.7.9 also takes "$SHARE/"
// and other spellings as shared (topics.go, IsSharedFilter uses strings.EqualFold), which
// here are plain filters starting with '$'.
//
// Match is on the engine's delivery path (every message is matched against every
// subscription of a shared connection), so it walks the two strings in place and never
// allocates. Validation is done once, when a scenario is loaded or a device subscribes.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter MQTT can carry: it is a UTF-8 string with a
// two-byte length prefix (MQTT 3.1.1 §1.5.3, MQTT 5.0 §1.5.4).
const MaxLen = 65535

// SharePrefix starts a shared-subscription filter (MQTT 5.0 §4.8.2).
const SharePrefix = "$share/"

// Errors returned, wrapped with the offending string quoted, by ValidName and ValidFilter.
// Section numbers are MQTT 3.1.1's unless marked 5.0.
var (
	ErrEmpty       = errors.New("must be at least one character long")                                                                 // §4.7.3
	ErrNUL         = errors.New("must not contain the NUL character U+0000")                                                           // §4.7.3
	ErrTooLong     = fmt.Errorf("must be at most %d bytes", MaxLen)                                                                    // §1.5.3
	ErrUTF8        = errors.New("must be well-formed UTF-8")                                                                           // §1.5.3
	ErrWildcard    = errors.New("a topic name must not contain the wildcards '+' or '#'")                                              // §4.7.1.1
	ErrMultiLevel  = errors.New(`'#' must be a whole level and the last one, as in "a/b/#"`)                                           // §4.7.1.2
	ErrSingleLevel = errors.New(`'+' must be a whole level, as in "a/+/c"`)                                                            // §4.7.1.3
	ErrShare       = errors.New(`a shared subscription must be "$share/{group}/{filter}", with a non-empty group free of "+" and "#"`) // 5.0 §4.8.2
)

// Match reports whether topic (a topic name, as published) matches filter (a topic filter,
// as subscribed). Both are assumed valid (see ValidName and ValidFilter); for invalid input
// Match still returns without panicking: a level that is exactly "#" matches the rest of
// the topic, a level that is exactly "+" matches one level, any other level (including
// "a#" or "b+") matches only itself, and a "$share/" filter that SharedFilter cannot split
// matches nothing.
//
// A shared subscription matches as the filter inside it, with one level of "$share/"
// removed: in "$share/a/$share/b/c" the inner "$share/b/c" is matched literally.
func Match(filter, topic string) bool {
	if strings.HasPrefix(filter, SharePrefix) {
		_, inner, ok := SharedFilter(filter)
		if !ok {
			return false
		}
		filter = inner
	}
	// §4.7.2: "The Server MUST NOT match Topic Filters starting with a wildcard character
	// (# or +) with Topic Names beginning with a $ character".
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '#' || filter[0] == '+') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// The topic has run out of levels but the filter has not: only a following
			// "#" matches, because it also matches its parent level (§4.7.1.2).
			next, _, _ := strings.Cut(frest, "/")
			return next == "#"
		}
		filter, topic = frest, trest
	}
}

// ValidName reports whether topic is a valid topic name to publish to: non-empty, at most
// MaxLen bytes, well-formed UTF-8 without NUL, and free of wildcards. Leading, trailing and
// repeated '/' are allowed: they make empty levels (§4.7.3).
func ValidName(topic string) error {
	if err := validString(topic); err != nil {
		return nameError(topic, err)
	}
	if strings.ContainsAny(topic, "+#") {
		return nameError(topic, ErrWildcard)
	}
	return nil
}

// ValidFilter reports whether filter is a valid topic filter to subscribe to: non-empty, at
// most MaxLen bytes, well-formed UTF-8 without NUL, '#' only as the whole last level, '+'
// only as a whole level, and a "$share/{group}/" prefix only with a valid group and a
// valid filter after it.
func ValidFilter(filter string) error {
	if err := validString(filter); err != nil {
		return filterError(filter, err)
	}
	inner := filter
	if strings.HasPrefix(filter, SharePrefix) {
		group, rest, ok := SharedFilter(filter)
		if !ok || strings.ContainsAny(group, "+#") || rest == "" {
			return filterError(filter, ErrShare)
		}
		inner = rest
	}
	for rest, more := inner, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch {
		case level == "#":
			if more {
				return filterError(filter, ErrMultiLevel)
			}
		case strings.IndexByte(level, '#') >= 0:
			return filterError(filter, ErrMultiLevel)
		case level != "+" && strings.IndexByte(level, '+') >= 0:
			return filterError(filter, ErrSingleLevel)
		}
	}
	return nil
}

// SharedFilter splits a shared subscription "$share/{group}/{filter}" into its group and
// the filter inside it, which is what a message's topic is matched against. ok is false
// when f does not start with SharePrefix or has no non-empty group followed by '/'. It
// only splits: ValidFilter checks that the group is free of wildcards and that filter is
// a valid, non-empty filter. group and filter share f's memory; it never allocates.
//
//	SharedFilter("$share/backend/t/#") // "backend", "t/#", true
//	SharedFilter("t/#")                // "", "", false
func SharedFilter(f string) (group, filter string, ok bool) {
	rest, isShare := strings.CutPrefix(f, SharePrefix)
	if !isShare {
		return "", "", false
	}
	group, filter, ok = strings.Cut(rest, "/")
	if !ok || group == "" {
		return "", "", false
	}
	return group, filter, true
}

// validString checks the rules shared by names and filters (§1.5.3, §4.7.3).
func validString(s string) error {
	switch {
	case s == "":
		return ErrEmpty
	case len(s) > MaxLen:
		return ErrTooLong
	case strings.IndexByte(s, 0) >= 0:
		return ErrNUL
	case !utf8.ValidString(s): // also rejects the surrogates U+D800..U+DFFF
		return ErrUTF8
	}
	return nil
}

func nameError(s string, err error) error {
	return fmt.Errorf("invalid topic name %s: %w", quote(s), err)
}

func filterError(s string, err error) error {
	return fmt.Errorf("invalid topic filter %s: %w", quote(s), err)
}

// quote quotes s for an error message, shortening very long strings at a character
// boundary.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
	}
	return fmt.Sprintf("%q", s)
}
