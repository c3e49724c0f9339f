package scenario

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Broker is where a run's devices connect: the embedded broker, or a broker's URL.
type Broker struct {
	URL *url.URL // nil for the embedded broker
}

// Embedded reports whether b is the in-process broker.
func (b Broker) Embedded() bool { return b.URL == nil }

// TLS reports whether connections to b use TLS: schemes ssl, tls, mqtts and wss.
func (b Broker) TLS() bool { return b.URL != nil && brokerSchemes[b.URL.Scheme] }

// brokerSchemes are the URL schemes a broker may have, each with whether it means TLS.
var brokerSchemes = map[string]bool{
	"tcp": false, "mqtt": false, "ws": false,
	"ssl": true, "tls": true, "mqtts": true, "wss": true,
}

// wantBroker says what ParseBroker accepts, for its errors.
const wantBroker = "want \"embedded\" or a URL scheme://host[:port] with scheme tcp, mqtt, ssl, tls, mqtts, ws or wss"

// ParseBroker parses a broker address: Embedded ("embedded"), or a URL
// scheme://host[:port][/path] whose scheme is tcp, mqtt, ssl, tls, mqtts, ws or wss. Its
// errors quote the address and say what is accepted; the scenario reports them after the
// field or flag that gave the address ("broker: ...", "--broker: ...").
func ParseBroker(s string) (Broker, error) {
	if s == Embedded {
		return Broker{}, nil
	}
	if i := strings.Index(s, "://"); i <= 0 {
		if near := suggest(s, []string{Embedded}); near != "" {
			return Broker{}, fmt.Errorf("%s is not a broker (%s); did you mean %q?", quote(s), wantBroker, near)
		}
		return Broker{}, fmt.Errorf("%s is not a broker URL (%s)", quote(s), wantBroker)
	}
	u, err := url.Parse(s)
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err // without the URL repeated
	}
	if err != nil {
		return Broker{}, fmt.Errorf("%s is not a valid URL (%v)", quote(s), err)
	}
	if _, ok := brokerSchemes[u.Scheme]; !ok {
		return Broker{}, fmt.Errorf("%s has unsupported scheme %q (%s)", quote(s), u.Scheme, wantBroker)
	}
	if u.Hostname() == "" {
		return Broker{}, fmt.Errorf("%s has no host (%s)", quote(s), wantBroker)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Broker{}, fmt.Errorf("%s: port %s is out of range (1..65535)", quote(s), port)
		}
	}
	return Broker{URL: u}, nil
}
