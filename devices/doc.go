// Package devices holds fleetsim's device models: pure behaviour, each a small state machine
// that talks only through sim.IO. No MQTT client, no sockets, no metrics live here; the
// engine runs every device in its own goroutine and carries its messages over MQTT.
//
// Kinds returns the kinds by name: phone, bulb, heater, camera, vacuum, sensor and client.
// The story is the seed's smart home: the phone publishes its position, and the bulb, heater,
// camera and vacuum react without knowing the phone exists. Devices of one home share only
// its physics (House): sensors read it, heaters warm it.
//
// # Topics
//
// P is the home's prefix (e.g. "home/1"), B a device's base topic (e.g. "home/1/bulb/bulb-1").
//
//	B/state                  every device: {"state", "cause", ...}, retained as configured
//	B/position               phone: {"away", "distance_m"}, retained as configured
//	P/heater/setpoint        phone publishes, heaters obey: {"celsius"} or a bare number
//	B/setpoint               one heater's own set point, same payloads
//	B/set                    bulb {"on"}, camera {"armed"}, vacuum {"clean"}
//	B/telemetry              bulb, heater: {"power_w"}
//	B/snapshot               camera while armed: {"motion", "bytes", "image"}
//	B/status                 vacuum: {"battery_pct", "state"}
//	B/temperature            sensor (json format): {"location", "celsius"}
//	B                        sensor (plain format): a bare number, as the seed's TEMPERATURE
//
// Phones are heard on P/phone/+/position and sensors on P/sensor/+/temperature. Every JSON
// payload a device publishes carries the envelope "id", "time" (wall, RFC 3339) and
// "sim_time" ("HH:MM"); the engine adds the measurement fields "pub" (stream id), "seq"
// (per device and topic, from 1) and "sent_ns" (intended send time, Unix ns). The "cause" of a state is the topic of
// the message that changed it, or "start", "schedule" (phone) or "timer" (vacuum).
//
// # Behaviour
//
// Each device's Run loops over its context, its inbox and its own timers, and returns nil
// when the context ends. Periodic publishes follow the device's Period (none when it is 0).
// A payload a device cannot use (bad JSON, wrong types, out-of-range values) goes to
// IO.Reject and changes nothing. Each state change is one narration line:
//
//	08:00 bulb-1     off      (phone-1 left home, on home/1/phone/phone-1/position)
package devices
