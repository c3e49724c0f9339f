package runner

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Print writes the summary as aligned plain text.
func (s *Summary) Print(w io.Writer) {
	how := "completed"
	if s.Interrupted {
		how = "interrupted"
	}
	over := ""
	if s.Client != "" {
		over = fmt.Sprintf(" (%s, MQTT %s)", s.Client, s.Protocol)
	}
	fmt.Fprintf(w, "\n%s\nfleetsim summary: %s on %s%s, %s after %v\n\n", s.Headline(), s.Scenario, s.Broker, over, how, s.Elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tdevices\tmsgs out\tbytes out\tmsgs in\tbytes in\tstate changes\trejected\tdropped\tfailed\t")
	for _, k := range s.Kinds {
		printKind(tw, k.Kind, k)
	}
	printKind(tw, "total", s.total())
	tw.Flush()

	if len(s.Devices) > 0 { // a merged report has none
		fmt.Fprintln(w, "\nstate changes per device:")
	}
	for i, d := range s.Devices {
		if i == maxDeviceLines {
			fmt.Fprintf(w, "  ... and %d more devices (see the fleetsim_device_state_changes_total metric)\n", len(s.Devices)-i)
			break
		}
		changes := max(len(d.States)-1, 0)
		fmt.Fprintf(w, "  home %d %-12s %2d  %s\n", d.Home, d.ID, changes, strings.Join(d.States, " → "))
	}
	if len(s.Links) > 0 {
		fmt.Fprintln(w, "\nshaped links (per link: configured rate, average achieved while connected; sends held: how long scheduled sends waited for the link):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "profile\tlinks\tup B/s set\tup B/s used\tdown B/s set\tdown B/s used\tbytes up\tbytes down\twaited up\toutages\tconnects\tone-way delay\tsends held p99\theld > 10ms\tnever sent\t")
		for _, l := range s.Links {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%.0f\t%d\t%d\t%v\t%d\t%d\t%s\t%s\t%d\t%d\t\n", l.Profile, l.Links, rateText(l.UpRate), l.AchievedUp,
				rateText(l.DownRate), l.AchievedDn, l.BytesUp, l.BytesDown, l.WaitUp.Round(time.Millisecond), l.Outages, l.Connects, delayText(l.Latency, l.Jitter),
				dur(l.Held.P99, l.Held.Count), l.HeldLate, l.Shed)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	s.Connections.print(w)
	s.Measured.print(w)
	s.printClock(w)
	if len(s.Thresholds) > 0 {
		fmt.Fprintln(w, "\nthresholds:")
		for _, t := range s.Thresholds {
			mark := "ok    "
			if !t.OK {
				mark = "FAILED"
			}
			fmt.Fprintf(w, "  %s %-24s %s\n", mark, t.Threshold, t.Detail)
		}
	}
	for _, e := range s.Errors {
		fmt.Fprintln(w, "error: "+e)
	}
}

// sentText is like "sent 516,065 of 900,032 scheduled".
func sentText(m *Measured) string {
	return fmt.Sprintf("sent %s of %s scheduled", thousands(m.Sent), thousands(m.Due))
}

// perSecond writes a rate: 59,800 or, below 100, 2.4.
func perSecond(r float64) string {
	if r < 100 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return thousands(uint64(r + 0.5))
}

// thousands writes n with commas between groups of three digits: 900,032.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// printMeasured writes the measurement part of the summary.
func (m *Measured) print(w io.Writer) {
	if len(m.ByKind) == 0 && m.Scheduled == 0 {
		return
	}
	fmt.Fprintln(w, "\nend to end (by receiving kind; latency from the intended send time):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tqos\tdelivered\tlost\tdup\treordered\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(k MeasuredKind, name, qos string) {
		l := k.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, qos, k.Totals.Delivered, k.Totals.Lost,
			k.Totals.Duplicates, k.Totals.OutOfOrder, dur(l.P50, l.Count), dur(l.P90, l.Count), dur(l.P99, l.Count), dur(l.P999, l.Count), dur(l.Max, l.Count))
	}
	for _, k := range m.ByKind {
		row(k, k.Kind, fmt.Sprint(k.QoS))
	}
	row(m.All, "all", "")
	tw.Flush()
	if m.Throughput > 0 {
		fmt.Fprintf(w, "throughput: %s delivered/s over %v (from the first measured send's due time to the last delivery)\n",
			perSecond(m.Throughput), m.Window.Round(time.Millisecond))
	}
	if m.Due > 0 {
		fmt.Fprintf(w, "schedules: %s; never sent: %s (the generator behind: %s; held back by shaped links: %s; waiting for the broker or the network: %s)\n",
			sentText(m), thousands(m.Shed), thousands(m.Behind), thousands(m.HeldBack), thousands(m.Waiting))
	}
	if m.Scheduled > 0 {
		fmt.Fprintf(w, "scheduled sends: %d, late (> %v): %d, lag p50 %s p99 %s max %s\n", m.Scheduled, LateAfter, m.Late,
			dur(m.Lag.P50, m.Lag.Count), dur(m.Lag.P99, m.Lag.Count), dur(m.Lag.Max, m.Lag.Count))
		if m.GeneratorLate != m.Late || m.GeneratorLag.P99 != m.Lag.P99 {
			gl := m.GeneratorLag
			fmt.Fprintf(w, "  the generator's part (not waiting for a previous publish to complete): late %d, lag p50 %s p99 %s max %s\n", m.GeneratorLate,
				dur(gl.P50, gl.Count), dur(gl.P99, gl.Count), dur(gl.Max, gl.Count))
		}
	}
	if m.Ack.Count > 0 {
		fmt.Fprintf(w, "publish acknowledgements (QoS 1, 2): p50 %s p99 %s max %s\n", dur(m.Ack.P50, 1), dur(m.Ack.P99, 1), dur(m.Ack.Max, 1))
	}
	if m.UnmeasuredOut+m.UnmeasuredIn+m.Forged > 0 {
		fmt.Fprintf(w, "not measured: %d sent and %d received plain-text payloads; %d forged headers ignored\n", m.UnmeasuredOut, m.UnmeasuredIn, m.Forged)
	}
	g := m.Generator
	fmt.Fprintf(w, "generator: %.1f CPU-seconds (%.0f%% of %d core(s)), %d GC cycles (%v paused), at most %d publishes in flight, %s\n",
		g.CPU.Seconds(), 100*g.Utilisation, g.Cores, g.GCCycles, g.GCPause.Round(time.Microsecond), g.MaxInFlight, wakeText(g.WakeBatch))
	if g.MaxRSS > 0 {
		fmt.Fprintf(w, "memory: peak RSS %.1f MB", float64(g.MaxRSS)/1e6)
		if g.Devices >= perDeviceFrom {
			fmt.Fprintf(w, " (%d bytes a device)", g.MaxRSS/int64(g.Devices))
		}
		fmt.Fprintf(w, "; GOMAXPROCS %d, GOGC %s, memory limit %s\n", g.GOMAXPROCS, gogcText(g.GOGC), limitText(g.MemoryLimit))
	}
	if g.StartingStack > minStack {
		fmt.Fprintf(w, "note: the devices' goroutines started with %d-byte stacks, not %d: the runtime sizes new stacks from the last average it saw; GODEBUG=adaptivestackstart=0 starts them at %d\n",
			g.StartingStack, minStack, minStack)
	}
	for _, why := range g.BottleneckWhy {
		fmt.Fprintln(w, "generator limit: "+why)
	}
}

// perDeviceFrom is the fleet size from which the summary gives the memory a device costs:
// in a smaller fleet the process's own memory is most of it, and the figure means nothing.
const perDeviceFrom = 10_000

// dur prints a latency, or "-" when nothing was recorded.
func dur(d time.Duration, count int64) string {
	if count == 0 {
		return "-"
	}
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func gogcText(gogc int) string {
	if gogc < 0 {
		return "off"
	}
	return strconv.Itoa(gogc)
}

func limitText(limit int64) string {
	if limit <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f MiB", float64(limit)/(1<<20))
}

// delayText renders a one-way delay: "300ms+0..40ms", "2ms" or "none".
func delayText(latency, jitter time.Duration) string {
	switch {
	case jitter > 0:
		return fmt.Sprintf("%v+0..%v", latency, jitter)
	case latency > 0:
		return latency.String()
	}
	return "none"
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f", r)
}

func printKind(w io.Writer, name string, k KindSummary) {
	fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
		name, k.Devices, k.Out, k.OutBytes, k.In, k.InBytes, k.Changes, k.Rejected, k.Dropped, k.Failed)
}

// wakeText says how devices were woken to send (Config.WakeBatch).
func wakeText(batch time.Duration) string {
	if batch <= 0 {
		return "each device woken at its own time"
	}
	return fmt.Sprintf("devices due within %v woken together", batch)
}
