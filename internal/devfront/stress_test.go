package devfront

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// stallingBody sends head, signals started, then blocks until ctx ends: a client that
// goes away in the middle of its request body.
type stallingBody struct {
	ctx     context.Context
	head    []byte
	started chan struct{}
	once    sync.Once
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	b.once.Do(func() { close(b.started) })
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// TestStressMixedRequests sends a few thousand requests over a handful of keep-alive
// connections, mixing refusals at the request headers (before the body was read, while
// it is being read, after it was read), refusals at the request body, proxied answers
// and clients that give up mid-body. No handler may panic (net/http logs a recovered
// handler panic; a panic on the body-reading goroutine kills the test binary), and
// every answered request gets its own answer.
func TestStressMixedRequests(t *testing.T) {
	const requests, workers = 2000, 6
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED")},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if h := m.GetRequestHeaders(); h != nil {
				if p, _ := header(m, ":path"); strings.HasPrefix(p, "/refuse-headers") {
					return immediate(403, `{"error":"headers"}`, nil)
				}
			}
			if m.GetRequestBody() != nil {
				if bytes.HasPrefix(m.GetRequestBody().GetBody(), []byte("refuse")) {
					return immediate(400, `{"error":"body"}`, nil)
				}
			}
			return nil
		}),
		upstream: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "echo %d", len(b))
		},
	})
	go func() { // the scripted processor reports every stream; nobody waits for them here
		for {
			select {
			case <-e.proc.streams:
			case <-t.Context().Done():
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case <-e.up.reqs:
			case <-t.Context().Done():
				return
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: workers},
		Timeout: testTimeout}
	t.Cleanup(client.CloseIdleConnections)

	big := strings.Repeat("x", 200<<10) // more than one read, so a refusal lands mid-body
	jobs := make(chan int)
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				errs <- stressOne(t.Context(), client, e.envoy.URL(), i, big)
			}
		}()
	}
	for i := 0; i < requests; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if p := e.envoy.Panics(); len(p) > 0 {
		t.Fatalf("the stand-in panicked %d times; the first:\n%s", len(p), p[0])
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, requests)
	}
}

// stressOne sends request i of the mix and checks its answer.
func stressOne(ctx context.Context, c *http.Client, base string, i int, big string) error {
	var (
		path, body string
		want       int
		wantBody   string
	)
	switch i % 6 {
	case 0:
		path, body, want, wantBody = "/refuse-headers", "small", 403, `{"error":"headers"}`
	case 1:
		path, body, want, wantBody = "/refuse-headers", big, 403, `{"error":"headers"}`
	case 2:
		path, body, want, wantBody = "/answer", "refuse: small", 400, `{"error":"body"}`
	case 3:
		path, body, want, wantBody = "/answer", "refuse: "+big, 400, `{"error":"body"}`
	case 4:
		path, body, want = "/answer", big[:1+i%4096], 200
		wantBody = fmt.Sprintf("echo %d", len(body))
	case 5:
		return stressCancel(ctx, c, base)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("request %d (%s, %d bytes): %w", i, path, len(body), err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != want || string(got) != wantBody {
		return fmt.Errorf("request %d (%s, %d bytes): %d %q %v, want %d %q", i, path, len(body),
			resp.StatusCode, got, err, want, wantBody)
	}
	return nil
}

// stressCancel starts a request whose body stalls after its first bytes and cancels it.
func stressCancel(ctx context.Context, c *http.Client, base string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &stallingBody{ctx: ctx, head: []byte("partial"), started: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/answer", b)
	if err != nil {
		return err
	}
	req.ContentLength = 100
	go func() {
		select {
		case <-b.started:
		case <-ctx.Done():
		}
		cancel()
	}()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		return fmt.Errorf("cancelled request answered %d", resp.StatusCode)
	}
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cancelled request: %w", err)
	}
	return nil
}

// A response that starts before the request body ended closes the HTTP/1 connection, as
// Envoy's HCM does; a response to a complete request keeps it.
func TestResponseBeforeRequestEndClosesConnection(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "NONE")},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if p, _ := header(m, ":path"); m.GetRequestHeaders() != nil && p == "/refuse" {
				return immediate(403, "no", nil)
			}
			return nil
		}),
	})
	resp, err := e.client.Post(e.envoy.URL()+"/answer", "text/plain", strings.NewReader("complete body"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 200 and keep-alive", resp.StatusCode, resp.Close)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := &stallingBody{ctx: ctx, head: []byte("partial"), started: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.envoy.URL()+"/refuse", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 100
	resp, err = e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 403 and close", resp.StatusCode, resp.Close)
	}
}
