package scenario

import (
	"fmt"
	"strings"
	"unicode/utf8"
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
// must already be a valid topic (see checkTopic) apart from length. It returns the
// placeholders used. Braces are reserved for placeholders.
func (p *parser) checkTemplate(line int, path, tmpl string, allowed []string) (map[string]bool, bool) {
	if tmpl == "" {
		p.addf(line, "%s: must not be empty", path)
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
				p.addf(line, "%s: %s has a \"{\" that is not closed (placeholders look like {id})", path, quote(tmpl))
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
			p.addf(line, "%s", msg)
		case '}':
			p.addf(line, "%s: %s has a \"}\" that was not opened (placeholders look like {id})", path, quote(tmpl))
			return nil, false
		}
	}
	if msg := checkTopic(tmpl, false); msg != "" {
		p.addf(line, "%s: %s %s", path, quote(tmpl), msg)
		return nil, false
	}
	return vars, ok
}

// checkTopic returns what makes s an invalid MQTT topic name to publish on, or "". The
// length is only checked when withLen is set (templates can grow or shrink on expansion).
func checkTopic(s string, withLen bool) string {
	switch {
	case s == "":
		return "is empty"
	case strings.ContainsRune(s, '+'):
		return "contains the wildcard \"+\", which is not allowed in a topic"
	case strings.ContainsRune(s, '#'):
		return "contains the wildcard \"#\", which is not allowed in a topic"
	case strings.ContainsRune(s, 0):
		return "contains a NUL character"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.HasPrefix(s, "$"):
		return "starts with \"$\", which is reserved for broker topics such as $SYS"
	case withLen && len(s) > MaxTopicBytes:
		return fmt.Sprintf("is %d bytes long (max %d)", len(s), MaxTopicBytes)
	}
	return ""
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
