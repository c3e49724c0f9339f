package broker

// Authentication and topic ACLs, for a classroom on a real network: with Options.Users set,
// every client must log in; teachers may do anything, students may read everything but
// write only their own students/<name>/# topics and the devices' command topics, so they
// can steer the simulated fleet but not forge what its devices report.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/sim/topic"
)

// User is one account of the embedded broker (see Options.Users).
type User struct {
	Password string
	// Teacher users may publish to any topic; other users are students (see
	// StudentWritable).
	Teacher bool
}

// CommandFilters are the device command topics every student may publish to: a device's
// set topic, a home's heater set point and one heater's set point.
var CommandFilters = []string{"+/+/+/+/set", "+/+/heater/setpoint", "+/+/heater/+/setpoint"}

// StudentWritable reports whether the student user may publish to name: the student's own
// students/<user>/# topics and the device command topics (CommandFilters).
func StudentWritable(user, name string) bool {
	if topic.Match("students/"+user+"/#", name) {
		return true
	}
	for _, f := range CommandFilters {
		if topic.Match(f, name) {
			return true
		}
	}
	return false
}

// ValidUsername reports why name cannot be a username, or nil: it must be non-empty and
// hold no '/', '+', '#', ':' or control characters, since it becomes a topic level.
func ValidUsername(name string) error {
	if name == "" {
		return fmt.Errorf("empty username")
	}
	for _, r := range name {
		if r == '/' || r == '+' || r == '#' || r == ':' || r < ' ' || r == 0x7f {
			return fmt.Errorf("username %q holds %q (not allowed in a topic level)", name, r)
		}
	}
	return nil
}

// authHook checks CONNECT credentials against users and publishes against the ACL. users
// is not changed after Start, so it needs no lock.
type authHook struct {
	mqtt.HookBase
	users map[string]User
}

func (*authHook) ID() string { return "fleetsim-auth" }

func (*authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate accepts a known username with its password; mochi refuses the rest
// with CONNACK "bad username or password".
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	u, ok := h.users[string(pk.Connect.Username)]
	// Compare even for an unknown user, so that timing does not tell which names exist.
	want := u.Password
	if !ok {
		want = "\x00unknown"
	}
	match := subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
	return ok && match && pk.Connect.UsernameFlag
}

// OnACLCheck lets everyone read (subscribe to any filter, receive any topic), teachers
// write anything and students write only what StudentWritable allows. A refused QoS 0
// publish is dropped; mochi disconnects an MQTT 3 client whose QoS 1 or 2 publish is
// refused, and answers an MQTT 5 client with "not authorized".
func (h *authHook) OnACLCheck(cl *mqtt.Client, name string, write bool) bool {
	if !write {
		return true
	}
	user := string(cl.Properties.Username)
	u, ok := h.users[user]
	if !ok {
		return false
	}
	return u.Teacher || StudentWritable(user, name)
}

// ErrAnonymousOffLoopback is Start's error for a broker without Options.Users that would
// listen on an address reachable from the network, unless Options.AllowAnonymousOffLoopback.
var ErrAnonymousOffLoopback = errors.New("without users, anyone on the network could connect and publish")

// authFor returns the hook for opts and the internal credentials (empty without users),
// or an error when opts.Users is empty and a listener is reachable from the network
// without opts.AllowAnonymousOffLoopback.
func authFor(opts Options, addr string) (mqtt.Hook, string, string, error) {
	if len(opts.Users) == 0 {
		if !opts.AllowAnonymousOffLoopback {
			for _, a := range []string{addr, opts.WSAddr} {
				if a != "" && !loopback(a) {
					return nil, "", "", fmt.Errorf("embedded broker: listening on %s: %w", a, ErrAnonymousOffLoopback)
				}
			}
		}
		return new(allowAll), "", "", nil
	}
	users := make(map[string]User, len(opts.Users)+1)
	for name, u := range opts.Users {
		if err := ValidUsername(name); err != nil {
			return nil, "", "", fmt.Errorf("embedded broker: %w", err)
		}
		users[name] = u
	}
	user, err := randomHex(8)
	if err != nil {
		return nil, "", "", err
	}
	password, err := randomHex(16)
	if err != nil {
		return nil, "", "", err
	}
	user = "fleetsim-internal-" + user
	users[user] = User{Password: password, Teacher: true}
	return &authHook{users: users}, user, password, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("embedded broker: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// loopback reports whether the listen address addr ("host:port") binds only a loopback
// address. An empty or unspecified host binds every interface, so it is not loopback;
// "localhost" is.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// InternalCredentials are the username and password of the teacher-level account Start
// creates for fleetsim's own devices when Options.Users is set, or "" and "" without users.
// They are random per Start and must never be printed.
func (b *Broker) InternalCredentials() (user, password string) {
	return b.internalUser, b.internalPassword
}
