// Package annotate posts Grafana annotations — marks on a dashboard's time axis, with tags
// and a text — through Grafana's HTTP API (POST /api/annotations), without ever holding up
// its caller: Post only queues, one goroutine sends, each request has a deadline, and a
// slow, failing or unreachable Grafana costs a warning, never an error of the caller's.
//
// The token authenticating the requests (a Grafana service account token, sent as
// "Authorization: Bearer") appears in no error or warning.
package annotate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout = 5 * time.Second
	DefaultQueue   = 16
)

// Options configures a Client. URL is required; zero values of the rest take the defaults.
type Options struct {
	// URL is Grafana's base URL, such as http://127.0.0.1:3000, or https://example/grafana
	// behind a proxy; the API path is added to it. It must not hold credentials.
	URL string
	// Token is a Grafana service account token, sent as "Authorization: Bearer TOKEN".
	// Empty sends no Authorization header (a Grafana that lets anonymous users annotate).
	Token string
	// Tags are added to every annotation's own tags.
	Tags []string
	// Timeout bounds each request (DefaultTimeout).
	Timeout time.Duration
	// Queue is how many annotations may wait to be sent (DefaultQueue); Post drops one that
	// finds the queue full, with a warning.
	Queue int
	// Warn, if set, is called with each annotation that could not be posted and why. It is
	// called from the sending goroutine, or from Post for a full queue.
	Warn func(error)
	// Client sends the requests (a client of its own by default). Its own timeout, if any,
	// applies beside Timeout.
	Client *http.Client
}

// Annotation is one mark on Grafana's time axis: a point at Time, or a region from Time to
// End when End is set.
type Annotation struct {
	Time time.Time
	End  time.Time
	Tags []string
	Text string
}

// body is the JSON of POST /api/annotations: times in milliseconds since the epoch.
type body struct {
	Time    int64    `json:"time"`
	TimeEnd int64    `json:"timeEnd,omitempty"`
	Tags    []string `json:"tags"`
	Text    string   `json:"text"`
}

// Client posts annotations to one Grafana. Post and Close may be called from any
// goroutine; Close ends the client's one goroutine.
type Client struct {
	o        Options
	endpoint string
	queue    chan Annotation
	cancel   context.CancelFunc // cuts requests in flight short, for Close past its wait
	ctx      context.Context
	done     chan struct{} // closed when the sending goroutine has returned

	mu     sync.Mutex // guards closed against Post's send on queue
	closed bool
}

// New checks o and starts the client's sending goroutine; Close ends it.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("grafana url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("grafana url %q: want http://host:port or https://host[/path]", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("grafana url %s: holds credentials; give a token instead", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("grafana url %s: want no query or fragment", u.Redacted())
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		o:        o,
		endpoint: strings.TrimSuffix(u.String(), "/") + "/api/annotations",
		queue:    make(chan Annotation, o.Queue),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go c.send()
	return c, nil
}

// Post queues a for sending and returns at once. An annotation that finds the queue full,
// or the client closed, is dropped with a warning.
func (c *Client) Post(a Annotation) {
	var err error
	c.mu.Lock()
	if c.closed {
		err = fmt.Errorf("annotation %q not posted: the client is closed", a.Text)
	} else {
		select {
		case c.queue <- a:
		default:
			err = fmt.Errorf("annotation %q not posted: %d already waiting for Grafana", a.Text, c.o.Queue)
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.warn(err)
	}
}

// Close stops taking annotations and waits until those queued are sent, or until ctx ends;
// then it abandons what is left (with a warning each) and returns once the sending
// goroutine has. It returns ctx's error if it gave up waiting.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		err = ctx.Err()
		c.cancel()
		<-c.done
	}
	c.cancel()
	return err
}

// send is the client's goroutine: it posts each queued annotation in turn, until Close.
func (c *Client) send() {
	defer close(c.done)
	for a := range c.queue {
		if c.ctx.Err() != nil {
			c.warn(fmt.Errorf("annotation %q not posted: gave up waiting for Grafana", a.Text))
			continue
		}
		if err := c.post(a); err != nil {
			c.warn(fmt.Errorf("annotation %q not posted: %w", a.Text, err))
		}
	}
}

// post sends one annotation and reads Grafana's answer.
func (c *Client) post(a Annotation) error {
	b := body{Time: a.Time.UnixMilli(), Text: a.Text, Tags: append(append([]string{}, c.o.Tags...), a.Tags...)}
	if !a.End.IsZero() {
		b.TimeEnd = a.End.UnixMilli()
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.Client.Do(req)
	if err != nil {
		if c.ctx.Err() != nil {
			return errors.New("Grafana had not answered when the client closed")
		}
		return c.redact(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	// Grafana explains a refusal as {"message": "..."}; anything else is cut short.
	var answer struct {
		Message string `json:"message"`
	}
	text := strings.TrimSpace(string(msg))
	if json.Unmarshal(msg, &answer) == nil && answer.Message != "" {
		text = answer.Message
	}
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return c.redact(fmt.Errorf("grafana answered %s: %s", resp.Status, text))
}

// redact removes the token from err's text, should anything have echoed it.
func (c *Client) redact(err error) error {
	if c.o.Token == "" || !strings.Contains(err.Error(), c.o.Token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.o.Token, "[token]"))
}

func (c *Client) warn(err error) {
	if c.o.Warn != nil {
		c.o.Warn(c.redact(err))
	}
}
