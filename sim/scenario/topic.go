package scenario

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fleetsim/fleetsim/sim/topic"
)

// Placeholders a topic template may use, and those a topic prefix may use.
var (
	topicPlaceholders  = []string{"prefix", "home", "kind", "name", "id", "n"}
	prefixPlaceholders = []string{"home"}
)

func placeholderList(names []string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = "{" + n + "}"
	}
	return strings.Join(s, ", ")
}

// checkTemplate validates a topic template: its placeholders, and the literal text, which
// must already be a valid topic (see checkName) apart from length. It returns the
// placeholders used. Braces are reserved for placeholders.
func (c *checker) checkTemplate(line int, path, tmpl string, allowed []string) (map[string]bool, bool) {
	if tmpl == "" {
		c.addf(line, "%s: must not be empty", path)
		return nil, false
	}
	vars := map[string]bool{}
	ok := true
	reported := map[string]bool{}
	for i := 0; i < len(tmpl); i++ {
		switch tmpl[i] {
		case '{':
			j := strings.IndexAny(tmpl[i+1:], "{}")
			if j < 0 || tmpl[i+1+j] == '{' {
				c.addf(line, "%s: %s has a \"{\" that is not closed (placeholders look like {id})", path, quote(tmpl))
				return nil, false
			}
			name := tmpl[i+1 : i+1+j]
			i += j + 1
			if contains(allowed, name) {
				vars[name] = true
				continue
			}
			ok = false
			if reported[name] {
				continue
			}
			reported[name] = true
			msg := fmt.Sprintf("%s: unknown placeholder %s (known: %s)", path, quote("{"+name+"}"), placeholderList(allowed))
			if s := suggest(name, allowed); s != "" {
				msg += fmt.Sprintf("; did you mean \"{%s}\"?", s)
			}
			c.addf(line, "%s", msg)
		case '}':
			c.addf(line, "%s: %s has a \"}\" that was not opened (placeholders look like {id})", path, quote(tmpl))
			return nil, false
		}
	}
	if err := checkName(tmpl, false); err != nil {
		c.addf(line, "%s: %v", path, err)
		return nil, false
	}
	return vars, ok
}

// checkName reports why s cannot be a topic the simulated devices publish on, or nil: it
// must be a valid MQTT topic name (topic.ValidName, whose errors say which rule and its
// limit), and must not start with '$', which brokers keep for their own topics such as
// $SYS (and for shared subscriptions, "$share/"). The length is only checked when withLen
// is set: a template grows or shrinks on expansion, and its expansion is checked whole.
func checkName(s string, withLen bool) error {
	if err := topic.ValidName(s); err != nil && (withLen || !errors.Is(err, topic.ErrTooLong)) {
		return err
	}
	if strings.HasPrefix(s, "$") {
		return fmt.Errorf("%s starts with \"$\", which is reserved for broker topics such as $SYS", quote(s))
	}
	return nil
}

// expand fills in a template's placeholders from vals, leaving anything else as written.
// The runner calls it once per device, so it makes one pass and no strings.Replacer.
func expand(tmpl string, vals map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i:]
		if j := strings.IndexByte(tmpl, '}'); j > 0 {
			if v, ok := vals[tmpl[1:j]]; ok {
				b.WriteString(v)
				tmpl = tmpl[j+1:]
				continue
			}
		}
		b.WriteByte('{')
		tmpl = tmpl[1:]
	}
}
