//go:build !linux

package link

// rss is not measured here; the benchmark then reports no RSS figure.
func rss() int64 { return 0 }
