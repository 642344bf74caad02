package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A minimal Chrome DevTools Protocol client for the dashboard test: enough
// to open a page, read console errors and exceptions, evaluate JavaScript
// and take a screenshot. (chromedp would do the same with a far larger
// dependency tree; the test needs five methods.)

// chromiumPath finds the browser: Debian's chromium package, or $CHROMIUM.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (CI=true): install the Debian package chromium")
	}
	t.Skip("chromium not found, skipping (install the Debian package chromium, or set CHROMIUM)")
	return ""
}

type cdp struct {
	t       *testing.T
	conn    *websocket.Conn
	session string

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpMessage
	errors  []string // console errors, exceptions, log errors
}

type cdpMessage struct {
	ID        int                       `json:"id,omitempty"`
	Method    string                    `json:"method,omitempty"`
	Params    json.RawMessage           `json:"params,omitempty"`
	Result    json.RawMessage           `json:"result,omitempty"`
	Error     *struct{ Message string } `json:"error,omitempty"`
	SessionID string                    `json:"sessionId,omitempty"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startChromium launches a headless browser with a fresh profile and
// attaches to a new blank page.
func startChromium(t *testing.T) *cdp {
	bin := chromiumPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() { cancel(); <-exited })
	found := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-exited:
		t.Fatal("chromium exited before DevTools was listening")
	case <-time.After(60 * time.Second):
		t.Fatal("chromium: no DevTools URL within 60s")
	}
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	c := &cdp{t: t, conn: conn, waiting: map[int]chan cdpMessage{}}
	go c.read(ctx)
	var target struct{ TargetID string }
	c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	c.session = attached.SessionID
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		c.call(c.session, m, map[string]any{}, nil)
	}
	c.call(c.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}, nil)
	return c
}

func (c *cdp) read(ctx context.Context) {
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch := c.waiting[m.ID]; ch != nil {
				ch <- m
				delete(c.waiting, m.ID)
			}
		} else if e := consoleError(m); e != "" {
			c.errors = append(c.errors, e)
		}
		c.mu.Unlock()
	}
}

// consoleError describes an event that is a console error, an uncaught
// exception or an error logged by the browser (a failed load, a CSP
// violation), or returns "".
func consoleError(m cdpMessage) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string
			Args []struct{ Value any }
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Type == "error" || p.Type == "assert" {
			return fmt.Sprintf("console.%s %v", p.Type, p.Args)
		}
	case "Runtime.exceptionThrown":
		return "exception " + string(m.Params)
	case "Log.entryAdded":
		var p struct {
			Entry struct{ Level, Text, URL string }
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Entry.Level == "error" {
			return "log " + p.Entry.Text + " " + p.Entry.URL
		}
	}
	return ""
}

func (c *cdp) call(session, method string, params any, result any) {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	p, _ := json.Marshal(params)
	msg, _ := json.Marshal(cdpMessage{ID: id, Method: method, Params: p, SessionID: session})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			c.t.Fatalf("cdp %s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				c.t.Fatalf("cdp %s: %v", method, err)
			}
		}
	case <-ctx.Done():
		c.t.Fatalf("cdp %s: no answer", method)
	}
}

// eval evaluates expr in the page and decodes its (JSON-serialisable) value.
func (c *cdp) eval(expr string, into any) {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	c.call(c.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		c.t.Fatalf("eval %s: %s", expr, r.ExceptionDetails.Text)
	}
	if err := json.Unmarshal(r.Result.Value, into); err != nil {
		c.t.Fatalf("eval %s: %v (%s)", expr, err, r.Result.Value)
	}
}

func (c *cdp) navigate(url string) {
	c.t.Helper()
	c.call(c.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// waitFor polls a JavaScript condition until it is true, within a deadline.
func (c *cdp) waitFor(expr string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ok bool
		c.eval("(() => { try { return Boolean("+expr+") } catch (e) { return false } })()", &ok) // the document may still be loading
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("page never satisfied %s; errors: %q", expr, c.consoleErrors())
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition with a deadline
	}
}

func (c *cdp) consoleErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errors...)
}

// screenshot returns a PNG of the whole page.
func (c *cdp) screenshot() []byte {
	c.t.Helper()
	var r struct{ Data []byte }
	c.call(c.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	if !strings.HasPrefix(string(r.Data), "\x89PNG") {
		c.t.Fatal("screenshot is not a PNG")
	}
	return r.Data
}
