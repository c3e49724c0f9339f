//go:build !unix

package link

import "time"

// cpuTime is not measured here; the benchmark then reports no CPU figure.
func cpuTime() time.Duration { return 0 }
