package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/sim/annotate"
	"github.com/fleetsim/fleetsim/sim/runner"
	"github.com/fleetsim/fleetsim/sim/scenario"
)

// grafanaTokenEnv holds the Grafana token for --grafana-url: never a flag, so that it is in
// no process list or shell history.
const grafanaTokenEnv = "FLEETSIM_GRAFANA_TOKEN"

// closeAnnotationsWithin is the most fleetsim waits for Grafana to take a run's last
// annotations: the summary and the report are written by then, and a Grafana that does not
// answer delays only fleetsim's exit, by this much at most.
const closeAnnotationsWithin = 5 * time.Second

// runAnnotations marks a run on Grafana's dashboards (--grafana-url): when it starts, each
// threshold it crossed, and when it ends, with its verdict. A nil *runAnnotations does
// nothing. Grafana's trouble is a warning on stderr, never the run's.
type runAnnotations struct {
	c        *annotate.Client
	scenario string
}

// startAnnotations marks the start of a run of s on the Grafana at grafanaURL (the token
// from FLEETSIM_GRAFANA_TOKEN) and returns what marks its end. It returns nil without a
// URL, and a usage error for a URL that is not a Grafana base URL.
func startAnnotations(grafanaURL string, s *scenario.Scenario, getenv func(string) string, stderr io.Writer) (*runAnnotations, error) {
	if grafanaURL == "" {
		return nil, nil
	}
	var mu sync.Mutex // warnings come from the client's goroutine
	warn := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "fleetsim: warning: grafana: %v\n", err)
	}
	token := getenv(grafanaTokenEnv)
	c, err := annotate.New(annotate.Options{URL: grafanaURL, Token: token, Tags: []string{"fleetsim", s.Name}, Warn: warn})
	if err != nil {
		return nil, usagef("run: --grafana-url: %v", err)
	}
	if token == "" {
		warn(errors.New(grafanaTokenEnv + " is not set: posting annotations without a token"))
	}
	how := "until stopped"
	if s.Duration > 0 {
		how = "for " + s.Duration.String()
	}
	c.Post(annotate.Annotation{Time: time.Now(), Tags: []string{"start"},
		Text: fmt.Sprintf("fleetsim: %s started %s: %d device(s) in %d home(s), seed %d", s.Name, how, s.DeviceCount(), s.Homes, s.Seed)})
	return &runAnnotations{c: c, scenario: s.Name}, nil
}

// end marks each threshold the run crossed and its end with the verdict (or the error that
// ended it without one). It does not wait for Grafana: close does.
func (a *runAnnotations) end(sum *runner.Summary, runErr error) {
	if a == nil {
		return
	}
	now := time.Now()
	switch {
	case sum != nil:
		for _, th := range sum.Thresholds {
			if !th.OK {
				a.c.Post(annotate.Annotation{Time: now, Tags: []string{"threshold"}, Text: "fleetsim: threshold crossed: " + th.Detail})
			}
		}
		text := sum.Headline()
		if sum.Interrupted {
			text += " (interrupted)"
		}
		if len(sum.Reasons) > 1 {
			text += "\n" + strings.Join(sum.Reasons, "\n")
		}
		a.c.Post(annotate.Annotation{Time: now, Tags: []string{"end", string(sum.Verdict)}, Text: text})
	case runErr != nil:
		a.c.Post(annotate.Annotation{Time: now, Tags: []string{"end", "error"}, Text: fmt.Sprintf("fleetsim: %s did not run: %v", a.scenario, runErr)})
	}
}

// close waits, at most closeAnnotationsWithin, for Grafana to take the marks still queued;
// what it did not take in time is warned of.
func (a *runAnnotations) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeAnnotationsWithin)
	defer cancel()
	_ = a.c.Close(ctx)
}
