package scenario

import (
	"fmt"
	"testing"

	"github.com/fleetsim/fleetsim/sim"
	"github.com/fleetsim/fleetsim/sim/topic"
)

// listenerParams are those of a kind that subscribes to filters given in its params, as
// the client kind in devices does.
type listenerParams struct {
	Subscribe []string `yaml:"subscribe"`
}

func buildListener(_ sim.DeviceConfig, p listenerParams) (sim.Device, error) {
	for i, f := range p.Subscribe {
		if err := topic.ValidFilter(f); err != nil {
			return nil, &sim.ParamError{Field: fmt.Sprintf("subscribe[%d]", i), Err: err}
		}
	}
	return nopDevice{}, nil
}

// Filters live in a kind's params and are checked with sim/topic: shared subscriptions
// load, and a bad one is reported where it is written.
func TestSharedSubscriptionFiltersInParams(t *testing.T) {
	kinds := map[string]sim.Kind{"listener": sim.NewKind("a test listener", func() listenerParams { return listenerParams{} }, buildListener)}
	good := doc(
		"name: backends",
		"homes: 3",
		"devices:",
		"  - kind: listener",
		"    count: 2",
		"    params:",
		"      subscribe: [\"$share/backend/home/+/sensor/#\", \"$share/audit/#\", \"home/+/alert\"]",
	)
	if _, err := Parse("good.yaml", []byte(good), kinds); err != nil {
		t.Errorf("shared subscriptions refused:\n%v", err)
	}
	bad := doc(
		"name: backends",                    // 1
		"devices:",                          // 2
		"  - kind: listener",                // 3
		"    params:",                       // 4
		"      subscribe:",                  // 5
		"        - \"$share/backend/t/#\"",  // 6
		"        - \"$share/back+end/t/#\"", // 7
	)
	want := `bad.yaml:7: devices[0].params.subscribe[1]: invalid topic filter "$share/back+end/t/#": ` +
		`a shared subscription must be "$share/{group}/{filter}", with a non-empty group free of "+" and "#"`
	if _, err := Parse("bad.yaml", []byte(bad), kinds); err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
