package devices

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/sim"
)

// CameraParams size the camera's snapshots.
type CameraParams struct {
	SnapshotBytes int `yaml:"snapshot_bytes"` // random image bytes per snapshot, 0..1048576
}

func cameraKind() sim.Kind {
	return sim.NewKind("security camera: armed while every phone is away, publishes snapshots while armed",
		func() CameraParams { return CameraParams{SnapshotBytes: 256} }, buildCamera)
}

func buildCamera(cfg sim.DeviceConfig, p CameraParams) (sim.Device, error) {
	if p.SnapshotBytes < 0 || p.SnapshotBytes > 1<<20 {
		return nil, &sim.ParamError{Field: "snapshot_bytes", Err: fmt.Errorf("%d is outside 0..1048576", p.SnapshotBytes)}
	}
	return &camera{cfg: cfg, bytes: p.SnapshotBytes}, nil
}

type camera struct {
	cfg      sim.DeviceConfig
	bytes    int
	schedule // its snapshots, one a period while armed
}

func (d *camera) Run(ctx context.Context, io sim.IO) error {
	return runPresenceSwitch(ctx, io, d.cfg, &d.schedule, "armed", true, armedOff, func(armed bool) bool { return armed }, func(o *out, armed bool) {
		if armed {
			d.snapshot(ctx, o)
		}
	})
}

// snapshot publishes a fake image: random bytes, and now and then some motion.
func (d *camera) snapshot(ctx context.Context, o *out) {
	r := o.io.Rand()
	image := make([]byte, d.bytes)
	for i := range image {
		image[i] = byte(r.Uint32())
	}
	began := time.Now()
	o.publish(ctx, d.cfg.Topic+"/snapshot", false, map[string]any{
		"motion": r.Float64() < 0.1, "bytes": d.bytes, "image": base64.StdEncoding.EncodeToString(image),
	})
	// On a slow link a snapshot takes longer to send than the camera takes to shoot the
	// next: say so, as a user watching the camera's feed fall behind would notice.
	if took := time.Since(began); d.cfg.Period > 0 && took > d.cfg.Period && ctx.Err() == nil {
		o.say(fmt.Sprintf("snapshot of %d bytes took %v to send, longer than the %v between shots", d.bytes, took.Round(100*time.Millisecond), d.cfg.Period), "on "+d.cfg.Topic+"/snapshot")
	}
}

func armedOff(armed bool) string {
	if armed {
		return "armed"
	}
	return "off"
}
