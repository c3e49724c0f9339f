package scenario

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/measure"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// Limits enforced by the loader.
const (
	MaxNameLen     = 64           // scenario and group names
	MaxHomes       = 100_000      // homes
	MaxCount       = 1_000_000    // devices per group per home
	MaxDevices     = 10_000_000   // devices in the whole run (homes × devices per home)
	MaxPoolSize    = 100_000      // connections in a pool
	MaxConnectRate = 1_000_000    // connections per second
	MaxRateLimit   = 1e6          // max_rate, publishes per second per device
	MaxTopicBytes  = topic.MaxLen // MQTT limit on a topic name, after expansion
)

// Load reads the scenario file at path and parses it with Parse. If the file cannot be read
// the error from os.ReadFile is returned unchanged; every other error is an *Errors.
func Load(path string, kinds map[string]sim.Kind) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, kinds)
}

// Parse parses and validates a scenario. file names it in messages. kinds are the device
// kinds that groups may use, by name.
//
// Decoding is strict: unknown fields anywhere (including inside a group's params, checked
// against the kind's params type) are errors. Each group's params are decoded into a fresh
// value from the kind's NewParams and checked by building one device with them.
//
// On failure the error is an *Errors listing every problem found, sorted by line.
func Parse(file string, data []byte, kinds map[string]sim.Kind) (*Scenario, error) {
	p := newParser(file, kinds)
	var s *Scenario
	if root := p.document(data); root != nil {
		s = p.scenario(root)
	}
	if len(p.problems) > 0 {
		return nil, p.errors()
	}
	return s, nil
}

type parser struct {
	file     string
	kinds    map[string]sim.Kind
	problems []Problem
	seen     map[Problem]bool

	// reported holds key nodes already reported (as unknown or duplicate), so that a
	// mapping shared through an anchor is reported once, not once per use.
	reported map[*yaml.Node]bool
	// budget bounds the work done by following aliases and merges, which could otherwise
	// make a small file expensive to load. It starts as a multiple of the file's node count.
	budget    int
	overspent bool
	sizes     map[*yaml.Node]int

	// Params checking state; see params.go.
	structs     map[reflect.Type]*structInfo
	checked     map[checkKey]bool
	badValues   map[*yaml.Node]bool
	shared      *sim.Shared
	groupByName map[string]int
}

func newParser(file string, kinds map[string]sim.Kind) *parser {
	return &parser{
		file:        file,
		kinds:       kinds,
		seen:        map[Problem]bool{},
		reported:    map[*yaml.Node]bool{},
		sizes:       map[*yaml.Node]int{},
		structs:     map[reflect.Type]*structInfo{},
		checked:     map[checkKey]bool{},
		badValues:   map[*yaml.Node]bool{},
		shared:      sim.NewShared(),
		groupByName: map[string]int{},
	}
}

// addf records a problem at line. Identical problems are recorded once.
func (p *parser) addf(line int, format string, args ...any) {
	pr := Problem{File: p.file, Line: max(line, 0), Msg: fmt.Sprintf(format, args...)}
	if p.seen[pr] {
		return
	}
	p.seen[pr] = true
	p.problems = append(p.problems, pr)
}

func (p *parser) errors() *Errors {
	ps := slices.Clone(p.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Errors{Problems: ps}
}

// spend charges n units of work against the budget and reports whether it was affordable.
func (p *parser) spend(n, line int) bool {
	if p.overspent {
		return false
	}
	p.budget -= n
	if p.budget < 0 {
		p.overspent = true
		p.addf(line, "anchors, aliases and merge keys expand this file too much; write the values out")
		return false
	}
	return true
}

var (
	syntaxLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	anchorRe     = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// document decodes data into a node tree and returns its root, or nil after recording why
// there is none.
func (p *parser) document(data []byte) (root *yaml.Node) {
	defer func() {
		// The YAML library is not expected to panic, but a scenario loader must not.
		if r := recover(); r != nil {
			p.addf(1, "syntax error: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.addf(0, "%s", emptyFileMsg)
		} else {
			p.syntax(err, data)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.addf(max(next.Line, 1), "a second YAML document starts here; a scenario file holds exactly one")
	} else if !errors.Is(err, io.EOF) {
		p.syntax(err, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0] == nil {
		p.addf(0, "%s", emptyFileMsg)
		return nil
	}
	p.budget = 16*countNodes(&doc) + 100_000
	return doc.Content[0]
}

// syntax records a YAML syntax error, finding a line for the errors that come without one.
func (p *parser) syntax(err error, data []byte) {
	msg := err.Error()
	if m := syntaxLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserError(m[2]) {
			// The YAML library reports the parser's (not the scanner's) errors with
			// 0-based lines: the line where the enclosing collection starts, or the
			// offending token's line when that is the first.
			line++
		}
		p.addf(max(line, 1), "syntax error: %s", m[2])
		return
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 1
	if m := anchorRe.FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = lineAt(data, i)
		}
	} else if i := badByte(data); i >= 0 {
		line = lineAt(data, i)
	}
	p.addf(line, "syntax error: %s", msg)
}

// parserErrors are the messages of the YAML parser's (not its scanner's) errors.
var parserErrors = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %YAML directive",
	"found duplicate %TAG directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func parserError(msg string) bool {
	return contains(parserErrors, msg) || (strings.HasPrefix(msg, "expected ") && strings.Contains(msg, " event but got "))
}

// badByte returns the offset of the first byte YAML rejects outright (invalid UTF-8 or a
// control character other than tab and line breaks), or -1.
func badByte(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfffe || r == 0xffff {
			return i
		}
		i += size
	}
	return -1
}

func lineAt(data []byte, off int) int { return 1 + bytes.Count(data[:off], []byte("\n")) }

// countNodes counts the nodes of the tree without following aliases.
func countNodes(n *yaml.Node) int {
	c := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil {
			continue
		}
		c++
		stack = append(stack, n.Content...)
	}
	return c
}

// Field names, in the order they are documented.
var (
	topFields   = []string{"name", "description", "broker", "duration", "day", "start", "seed", "homes", "topic_prefix", "connections", "thresholds", "devices"}
	groupFields = []string{"kind", "name", "count", "homes", "period", "qos", "retained", "max_rate", "topic", "link", "params"}
)

// groupState is what the loader knows about one group while validating.
type groupState struct {
	g          Group
	where      string     // "devices[i]"
	bad        bool       // a problem was found in the group
	nameNode   *yaml.Node // value of name, if given
	topicNode  *yaml.Node // value of topic, if given
	paramsKey  *yaml.Node // key node of params, if given
	paramsNode *yaml.Node // value of params (dereferenced), if given and not null
	linkLine   int        // line of link, if given
	homesLine  int        // line of homes, if given
	kind       sim.Kind
	kindOK     bool
}

func (p *parser) scenario(root *yaml.Node) *Scenario {
	s := &Scenario{
		File:        p.file,
		Broker:      Embedded,
		Seed:        1,
		Homes:       1,
		TopicPrefix: DefaultTopicPrefix,
		Connections: Connections{Mode: PerHome},
	}
	rootLine := max(root.Line, 1)
	top := deref(root)
	if top == nil || top.Kind != yaml.MappingNode {
		p.addf(rootLine, "expected a mapping of scenario fields (name, devices, ...) at the top level, got %s", describe(top))
		return nil
	}
	f := p.fields(top, "", topFields)

	if kv, ok := f["name"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, "name"); ok {
			s.Name = v
			p.checkName(kv.val.Line, "name", v, false)
		}
	} else {
		p.missing(kv, top, "", "name", "")
	}
	if kv, ok := f["description"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, "description"); ok {
			s.Description = v
		}
	}
	if kv, ok := f["broker"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, "broker"); ok {
			if _, err := ParseBroker(v); err != nil {
				p.addf(kv.val.Line, "broker: %v", err)
			} else {
				s.Broker = v
			}
		}
	}
	if kv, ok := f["duration"]; ok && !isNull(kv.val) {
		if d, ok := p.duration(kv, "duration"); ok {
			if d < 0 {
				p.addf(kv.val.Line, "duration: %s is out of range (>= 0; 0 runs until interrupted)", scalarText(kv.val))
			} else {
				s.Duration = d
			}
		}
	}
	if kv, ok := f["day"]; ok && !isNull(kv.val) {
		if d, ok := p.duration(kv, "day"); ok {
			if d != 0 && d < minDay {
				p.addf(kv.val.Line, "day: %s is out of range (0 for real time, or >= 1s)", scalarText(kv.val))
			} else {
				s.Day = d
			}
		}
	}
	if kv, ok := f["start"]; ok && !isNull(kv.val) {
		if d, ok := p.timeOfDay(kv, "start"); ok {
			s.Start = d
		}
	}
	if kv, ok := f["seed"]; ok && !isNull(kv.val) {
		if v, ok := p.uint64(kv, "seed"); ok {
			s.Seed = v
		}
	}
	if kv, ok := f["thresholds"]; ok && !isNull(kv.val) {
		s.Thresholds = p.thresholds(kv)
	}
	homesOK := true
	if kv, ok := f["homes"]; ok && !isNull(kv.val) {
		v, ok := p.intRange(kv, "homes", 1, MaxHomes)
		if ok {
			s.Homes = int(v)
		}
		homesOK = ok
	}
	prefixOK := true
	if kv, ok := f["topic_prefix"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, "topic_prefix"); ok {
			s.TopicPrefix = v
			prefixOK = p.checkPrefix(kv.val.Line, s)
		} else {
			prefixOK = false
		}
	}
	connectionsOK := true
	if kv, ok := f["connections"]; ok && !isNull(kv.val) {
		var c Connections
		if c, connectionsOK = p.connections(kv); connectionsOK {
			s.Connections = c
		}
	}

	kv, ok := f["devices"]
	if !ok || isNull(kv.val) {
		p.missing(kv, top, "", "devices", " (a list of device groups)")
		return s
	}
	list := deref(kv.val)
	if list.Kind != yaml.SequenceNode {
		p.addf(kv.val.Line, "devices: expected a list of device groups, got %s", describe(list))
		return s
	}
	if len(list.Content) == 0 {
		p.addf(kv.val.Line, "devices: must list at least one device group")
		return s
	}
	groups := make([]*groupState, 0, len(list.Content))
	for i, item := range list.Content {
		if !p.spend(1, item.Line) {
			break
		}
		groups = append(groups, p.group(s, i, item))
	}
	if p.overspent {
		return s
	}
	p.checkGroups(s, groups, homesOK, prefixOK, f)
	// A group's link shapes each device's own connection; shared connections take theirs
	// from connections.link. Without a valid connection mode there is nothing to say.
	for _, gs := range groups {
		if gs.linkLine > 0 && connectionsOK && s.Connections.Mode != PerDevice {
			p.addf(gs.linkLine, "%s.link: a group's link shapes each device's own connection and needs connections: %s; to shape the shared connections, set the link there: connections: %s",
				gs.where, PerDevice, sharedLinkExample(s.Connections))
		}
	}

	s.Groups = make([]Group, 0, len(groups))
	for _, gs := range groups {
		s.Groups = append(s.Groups, gs.g)
	}
	// Let each kind check its params, once for the first device of the first home, only
	// for groups that are otherwise fine so a kind never sees half-decoded values.
	for i := range s.Groups {
		if gs := groups[i]; !gs.bad && gs.kindOK {
			p.build(s, &s.Groups[i], gs)
		}
	}
	return s
}

// sharedLinkExample writes c's mode in the mapping form with a link, for messages.
func sharedLinkExample(c Connections) string {
	if c.Mode == Pool {
		return fmt.Sprintf("{pool: %d, link: ...}", c.PoolSize)
	}
	return fmt.Sprintf("{mode: %s, link: ...}", c.Mode)
}

// emptyFileMsg is the message of the one problem reported at line 0.
const emptyFileMsg = "the file is empty; a scenario needs at least a name and devices"

const minDay = 1e9 // 1s, as a time.Duration

// missing reports a required field that is absent (at the mapping's line) or null (at its
// own line).
// thresholds reads a list of k6-style thresholds ("latency_p99<50ms"), each checked where
// it stands.
func (p *parser) thresholds(kv keyValue) []measure.Threshold {
	seq := deref(kv.val)
	if seq == nil || seq.Kind != yaml.SequenceNode {
		p.addf(kv.val.Line, "thresholds: expected a list such as [\"latency_p99<50ms\", \"loss==0\"], got %s", describe(seq))
		return nil
	}
	var out []measure.Threshold
	for i, item := range seq.Content {
		n := deref(item)
		if n == nil || n.Kind != yaml.ScalarNode {
			p.addf(item.Line, "thresholds[%d]: expected a threshold such as \"loss==0\", got %s", i, describe(n))
			continue
		}
		t, err := measure.Parse(n.Value)
		if err != nil {
			p.addf(n.Line, "thresholds[%d]: %v", i, err)
			continue
		}
		out = append(out, t)
	}
	return out
}

func (p *parser) missing(kv keyValue, m *yaml.Node, path, field, hint string) {
	if kv.key != nil {
		p.addf(max(kv.key.Line, 1), "%s: a value is required%s", strings.TrimPrefix(path+"."+field, "."), hint)
		return
	}
	p.addf(max(m.Line, 1), "%smissing required field %q%s", pathPrefix(path), field, hint)
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// checkName validates a scenario or group name and records a problem if it is bad.
func (p *parser) checkName(line int, path, name string, fromKind bool) bool {
	what := fmt.Sprintf("%s: %s", path, quote(name))
	if fromKind {
		what = fmt.Sprintf("%s: the name defaults to the kind, and %s", path, quote(name))
	}
	switch {
	case len(name) > MaxNameLen:
		p.addf(line, "%s is too long (%d bytes, max %d)", what, len(name), MaxNameLen)
	case !nameRe.MatchString(name):
		p.addf(line, "%s is not a valid name (lowercase letters, digits, '-' and '_', starting with a letter or digit; max %d)", what, MaxNameLen)
	default:
		return true
	}
	return false
}

// connectionFields are the fields of connections written as a mapping.
var connectionFields = []string{"mode", "pool", "link", "session", "connect_rate", "source_addresses"}

// Session kinds.
const (
	CleanSession      = "clean"      // the broker forgets a client's session when it goes
	PersistentSession = "persistent" // CleanSession=false: subscriptions and QoS 1/2 messages survive a drop
)

// connections reads `connections: per-home`, `{pool: N}` or the mapping form with a link,
// `{mode: per-home, link: nb-iot}` or `{pool: 4, link: {profile: wifi, ...}}`.
func (p *parser) connections(kv keyValue) (Connections, bool) {
	v := deref(kv.val)
	switch v.Kind {
	case yaml.ScalarNode:
		switch v.Value {
		case PerDevice, PerHome:
			if v.ShortTag() == "!!str" {
				return Connections{Mode: v.Value}, true
			}
		case Pool:
			p.addf(kv.val.Line, "connections: a pool needs a size; write {pool: N} (N 1..%d)", MaxPoolSize)
			return Connections{}, false
		}
		msg := fmt.Sprintf("connections: expected %s, %s or {pool: N}, got %s", PerDevice, PerHome, describe(v))
		if s := suggest(v.Value, []string{PerDevice, PerHome}); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		p.addf(kv.val.Line, "%s", msg)
	case yaml.MappingNode:
		return p.connectionsMapping(v)
	default:
		p.addf(kv.val.Line, "connections: expected %s, %s, {pool: N} or a mapping such as {mode: %s, link: wifi}, got %s", PerDevice, PerHome, PerHome, describe(v))
	}
	return Connections{}, false
}

// connectionsMapping reads the mapping form of connections: a mode (pool implied by a
// pool size), and a link for every connection.
func (p *parser) connectionsMapping(v *yaml.Node) (Connections, bool) {
	f := p.fields(v, "connections", connectionFields)
	var c Connections
	ok := true
	modeKV, hasMode := f["mode"]
	hasMode = hasMode && !isNull(modeKV.val)
	poolKV, hasPool := f["pool"]
	hasPool = hasPool && !isNull(poolKV.val)
	if hasMode {
		m := deref(modeKV.val)
		switch {
		case m.Kind == yaml.ScalarNode && m.ShortTag() == "!!str" && (m.Value == PerDevice || m.Value == PerHome || m.Value == Pool):
			c.Mode = m.Value
		default:
			msg := fmt.Sprintf("connections.mode: expected %s, %s or %s, got %s", PerDevice, PerHome, Pool, describe(m))
			if m.Kind == yaml.ScalarNode {
				if s := suggest(m.Value, []string{PerDevice, PerHome, Pool}); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
			}
			p.addf(modeKV.val.Line, "%s", msg)
			ok = false
		}
	}
	switch {
	case hasPool:
		if ok && hasMode && c.Mode != Pool {
			p.addf(poolKV.key.Line, "connections.pool: a pool size goes with mode: %s (or no mode), not mode: %s", Pool, c.Mode)
			ok = false
			break
		}
		n, nok := p.intRange(poolKV, "connections.pool", 1, MaxPoolSize)
		if nok {
			c.Mode, c.PoolSize = Pool, int(n)
		}
		ok = ok && nok
	case c.Mode == Pool:
		p.addf(modeKV.val.Line, "connections: mode: %s needs a size; add pool: N (N 1..%d)", Pool, MaxPoolSize)
		ok = false
	case !hasMode:
		p.addf(max(v.Line, 1), "connections: missing field \"pool\" (the number of connections, 1..%d) or \"mode\" (%s or %s)", MaxPoolSize, PerDevice, PerHome)
		ok = false
	}
	if kv, has := f["link"]; has && !isNull(kv.val) {
		c.Link = p.link(kv, "connections.link")
	}
	if kv, has := f["session"]; has && !isNull(kv.val) {
		if v, vok := p.str(kv, "connections.session"); vok {
			switch v {
			case CleanSession:
			case PersistentSession:
				c.Persistent = true
			default:
				p.addf(kv.val.Line, "connections.session: expected %s or %s, got %q", CleanSession, PersistentSession, v)
			}
		}
	}
	if kv, has := f["connect_rate"]; has && !isNull(kv.val) {
		if v, vok := p.float(kv, "connections.connect_rate"); vok {
			if !(v > 0 && v <= MaxConnectRate) {
				p.addf(kv.val.Line, "connections.connect_rate: %s is out of range (connections per second, > 0 and <= %d)", scalarText(kv.val), MaxConnectRate)
			} else {
				c.ConnectRate = v
			}
		}
	}
	if kv, has := f["source_addresses"]; has && !isNull(kv.val) {
		c.SourceAddresses = p.sourceAddresses(kv)
	}
	return c, ok
}

// sourceAddresses reads a list of local IP addresses to open connections from.
func (p *parser) sourceAddresses(kv keyValue) []netip.Addr {
	seq := deref(kv.val)
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		p.addf(kv.val.Line, "connections.source_addresses: expected a list of local IP addresses such as [127.0.0.1, 127.0.0.2], got %s", describe(seq))
		return nil
	}
	var out []netip.Addr
	for i, item := range seq.Content {
		n := deref(item)
		a, err := netip.ParseAddr(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			p.addf(item.Line, "connections.source_addresses[%d]: expected an IP address such as 127.0.0.2, got %s", i, describe(n))
			continue
		}
		out = append(out, a)
	}
	return out
}

// group decodes the i-th entry of devices. It does not run the kind's Build.
func (p *parser) group(s *Scenario, i int, item *yaml.Node) *groupState {
	gs := &groupState{
		where: fmt.Sprintf("devices[%d]", i),
		g: Group{
			Count:   1,
			MaxRate: DefaultMaxRate,
			Topic:   DefaultTopic,
			Line:    max(item.Line, 1),
		},
	}
	before := len(p.problems)
	defer func() {
		if len(p.problems) > before {
			gs.bad = true
		}
	}()
	m := deref(item)
	if m == nil || m.Kind != yaml.MappingNode {
		p.addf(gs.g.Line, "%s: expected a mapping with at least a kind, got %s", gs.where, describe(m))
		return gs
	}
	f := p.fields(m, gs.where, groupFields)
	w := gs.where

	if kv, ok := f["kind"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, w+".kind"); ok {
			gs.g.Kind = v
			if k, ok := p.kinds[v]; ok {
				gs.kind, gs.kindOK = k, true
			} else {
				p.addf(kv.val.Line, "%s.kind: %s", w, p.unknownKind(v))
			}
		}
	} else {
		p.missing(kv, m, w, "kind", " ("+p.knownKinds()+")")
	}
	if kv, ok := f["name"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, w+".name"); ok {
			gs.g.Name = v
			gs.nameNode = kv.val
			p.checkName(kv.val.Line, w+".name", v, false)
		}
	} else if gs.g.Kind != "" {
		gs.g.Name = gs.g.Kind
		p.checkName(gs.g.Line, w+".name", gs.g.Name, true)
	}
	if kv, ok := f["count"]; ok && !isNull(kv.val) {
		if v, ok := p.intRange(kv, w+".count", 1, MaxCount); ok {
			gs.g.Count = int(v)
		} else {
			gs.g.Count = 0
		}
	}
	if kv, ok := f["homes"]; ok && !isNull(kv.val) {
		if v, ok := p.intRange(kv, w+".homes", 1, MaxHomes); ok {
			gs.g.Homes = int(v)
			gs.homesLine = kv.val.Line
		}
	}
	if kv, ok := f["period"]; ok && !isNull(kv.val) {
		if d, ok := p.duration(kv, w+".period"); ok {
			if d < 0 || (d > 0 && d < minPeriod) {
				p.addf(kv.val.Line, "%s.period: %s is out of range (0 for no telemetry, or >= 1ms)", w, scalarText(kv.val))
			} else {
				gs.g.Period = d
			}
		}
	}
	if kv, ok := f["qos"]; ok && !isNull(kv.val) {
		if v, ok := p.intRange(kv, w+".qos", 0, 2); ok {
			gs.g.QoS = byte(v)
		}
	}
	if kv, ok := f["retained"]; ok && !isNull(kv.val) {
		if v, ok := p.bool(kv, w+".retained"); ok {
			gs.g.Retained = v
		}
	}
	if kv, ok := f["max_rate"]; ok && !isNull(kv.val) {
		if v, ok := p.float(kv, w+".max_rate"); ok {
			if !(v > 0 && v <= MaxRateLimit) {
				p.addf(kv.val.Line, "%s.max_rate: %s is out of range (> 0 and <= 1000000 publishes per second)", w, scalarText(kv.val))
			} else {
				gs.g.MaxRate = v
			}
		}
	}
	if kv, ok := f["topic"]; ok && !isNull(kv.val) {
		if v, ok := p.str(kv, w+".topic"); ok {
			gs.g.Topic = v
			gs.topicNode = kv.val
		}
	}
	if kv, ok := f["link"]; ok && !isNull(kv.val) {
		gs.linkLine = kv.val.Line
		gs.g.Link = p.link(kv, w+".link")
	}
	if kv, ok := f["params"]; ok {
		gs.paramsKey = kv.key
		if !isNull(kv.val) {
			gs.paramsNode = kv.val
		}
	}
	// Without a known kind there is nothing to check params against; the kind's problem is
	// already reported.
	if gs.kindOK {
		gs.g.Params = p.params(gs)
	}
	return gs
}

const minPeriod = 1e6 // 1ms, as a time.Duration

func (p *parser) knownKinds() string {
	if len(p.kinds) == 0 {
		return "no kinds are registered"
	}
	return "known kinds: " + strings.Join(slices.Sorted(maps.Keys(p.kinds)), ", ")
}

func (p *parser) unknownKind(v string) string {
	msg := fmt.Sprintf("unknown kind %s (%s)", quote(v), p.knownKinds())
	if s := suggest(v, slices.Collect(maps.Keys(p.kinds))); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// checkGroups runs the checks that involve several groups or the scenario as a whole:
// unique names, topics and the total device count.
func (p *parser) checkGroups(s *Scenario, groups []*groupState, homesOK, prefixOK bool, f map[string]keyValue) {
	prefixHasHome := strings.Contains(s.TopicPrefix, "{home}")
	sigs := map[string]int{}
	countsOK := true
	var perHome int64
	for i, gs := range groups {
		before := len(p.problems)
		g := &gs.g
		if g.Count <= 0 {
			countsOK = false
		} else {
			perHome = min(perHome+int64(g.Count), 1<<40)
		}
		if g.Homes > s.Homes && homesOK {
			p.addf(gs.homesLine, "%s.homes: %d is more than the scenario's %d homes", gs.where, g.Homes, s.Homes)
		}
		// Unique names.
		if g.Name != "" {
			if j, dup := p.groupByName[g.Name]; dup {
				if gs.nameNode != nil {
					p.addf(gs.nameNode.Line, "%s.name: duplicate name %s (already used by devices[%d] at line %d)", gs.where, quote(g.Name), j, groups[j].g.Line)
				} else {
					p.addf(g.Line, "%s.name: duplicate name %s, which defaults to the kind (already used by devices[%d] at line %d); give the group a distinct name", gs.where, quote(g.Name), j, groups[j].g.Line)
				}
			} else {
				p.groupByName[g.Name] = i
			}
		}
		// Topic template.
		tline := g.Line
		if gs.topicNode != nil {
			tline = gs.topicNode.Line
		}
		if vars, ok := p.checkTemplate(tline, gs.where+".topic", g.Topic, topicPlaceholders); ok {
			if g.Count > 1 && !vars["id"] && !vars["n"] {
				p.addf(tline, "%s.topic: %s gives all %d devices of the group in a home the same topic; include {id} or {n}", gs.where, quote(g.Topic), g.Count)
			}
			if homesOK && s.Homes > 1 && !vars["home"] && !(vars["prefix"] && prefixHasHome) {
				if vars["prefix"] {
					if prefixOK {
						p.addf(tline, "%s.topic: %s gives the devices of all %d homes the same topics, because topic_prefix %s has no {home}; add {home} to topic_prefix or to the topic", gs.where, quote(g.Topic), s.Homes, quote(s.TopicPrefix))
					}
				} else {
					p.addf(tline, "%s.topic: %s gives the devices of all %d homes the same topics; include {prefix} or {home}", gs.where, quote(g.Topic), s.Homes)
				}
			}
			// The expansion only adds what names and numbers bring in, so checking the
			// largest home and device numbers is enough.
			if len(p.problems) == before && prefixOK && g.Kind != "" {
				homes := 1
				if homesOK {
					homes = s.Homes
				}
				n := max(g.Count, 1)
				topic := expand(g.Topic, map[string]string{
					"prefix": s.Prefix(homes),
					"home":   strconv.Itoa(homes),
					"kind":   g.Kind,
					"name":   g.Name,
					"id":     g.DeviceID(n),
					"n":      strconv.Itoa(n),
				})
				if err := checkName(topic, true); err != nil {
					p.addf(tline, "%s.topic: %s expands to %v", gs.where, quote(g.Topic), err)
				}
			}
			if len(p.problems) == before && prefixOK && g.Kind != "" {
				sig := topicSignature(s, g)
				if j, dup := sigs[sig]; dup {
					p.addf(tline, "%s.topic: %s gives the same topics as the topic of devices[%d] (line %d)", gs.where, quote(g.Topic), j, groups[j].g.Line)
				} else {
					sigs[sig] = i
				}
			}
		}
		if len(p.problems) > before {
			gs.bad = true
		}
	}
	if homesOK && countsOK && len(groups) > 0 {
		if total := int64(s.Homes) * perHome; total > MaxDevices {
			line := 0
			if kv, ok := f["homes"]; ok {
				line = kv.key.Line
			} else if kv, ok := f["devices"]; ok {
				line = kv.key.Line
			}
			p.addf(line, "too many devices: %d homes × %d devices per home = %d (max %d)", s.Homes, perHome, total, MaxDevices)
		}
	}
}

// topicSignature renders the group's topic template with everything but the home and
// device numbers filled in: two groups with the same signature publish on the same topics.
func topicSignature(s *Scenario, g *Group) string {
	return expand(g.Topic, map[string]string{
		"prefix": s.TopicPrefix,
		"kind":   g.Kind,
		"name":   g.Name,
		"id":     g.Name + "-{n}",
	})
}

// checkPrefix validates the topic prefix template.
func (p *parser) checkPrefix(line int, s *Scenario) bool {
	if _, ok := p.checkTemplate(line, "topic_prefix", s.TopicPrefix, prefixPlaceholders); !ok {
		return false
	}
	expanded := s.Prefix(s.Homes)
	if err := checkName(expanded, true); err != nil {
		p.addf(line, "topic_prefix: %s expands to %v", quote(s.TopicPrefix), err)
		return false
	}
	return true
}

// build lets the group's kind check the decoded params by building one device.
func (p *parser) build(s *Scenario, g *Group, gs *groupState) {
	cfg := s.DeviceConfig(g, 1, 1)
	cfg.Shared = p.shared
	var err error
	var dev sim.Device
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("kind %q panicked while building a device: %v", g.Kind, r)
			}
		}()
		dev, err = gs.kind.Build(cfg, g.Params)
	}()
	if err == nil && dev == nil {
		err = fmt.Errorf("kind %q built no device", g.Kind)
	}
	if err == nil {
		return
	}
	var pe *sim.ParamError
	if errors.As(err, &pe) {
		inner := "invalid value"
		if pe.Err != nil {
			inner = pe.Err.Error()
		}
		path := gs.where + ".params"
		if pe.Field != "" {
			path += "." + pe.Field
		}
		p.addf(p.paramLine(gs, pe.Field), "%s: %s", path, inner)
		return
	}
	p.addf(g.Line, "%s: %v", gs.where, err)
}
