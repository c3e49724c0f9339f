package link_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/sim/link"
)

// Plugging a link into paho: every connection of the client, including reconnects after
// an outage, goes through the link and shares its bandwidth.
func Example_paho() {
	p, err := link.Lookup("nb-iot", link.Profile{OutageEvery: time.Hour})
	if err != nil {
		panic(err)
	}
	l := link.NewLink(p, rand.New(rand.NewPCG(1, 2)))
	defer l.Close()

	opts := mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:1883")
	opts.SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
		defer cancel()
		return l.Dial(ctx, "tcp", u.Host) // for ssl://, wrap the result in tls.Client
	})
	_ = mqtt.NewClient(opts) // Connect, publish...

	// The link counts what crossed it: nothing yet, as the client has not connected.
	s := l.Stats()
	fmt.Println(s.BytesUp, s.BytesDown, s.Outages)
	// Output: 0 0 0
}
