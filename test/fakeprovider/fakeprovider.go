// Package fakeprovider runs local HTTP servers that answer like OpenAI,
// Anthropic and Azure OpenAI, byte for byte from the wire-format fixtures in
// test/testdata/fixtures, record every request they receive, and fail on
// demand (error statuses, a held first byte, a reset connection, an error
// event inside a stream).
//
// It exists for the end-to-end tests: openai-go → Envoy stand-in → ext_proc
// server → fake provider.
package fakeprovider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Kind selects which provider a Server imitates.
type Kind int

// Provider kinds. The zero Kind is invalid so that a forgotten field is caught.
const (
	OpenAI    Kind = iota + 1 // api.openai.com: /v1/chat/completions, /v1/embeddings, /v1/models
	Anthropic                 // api.anthropic.com: /v1/messages
	Azure                     // {resource}.openai.azure.com: deployment and v1 chat completions
	Bedrock                   // bedrock-runtime.{region}.amazonaws.com: Converse, ConverseStream (SigV4)
	Vertex                    // {location}-aiplatform.googleapis.com: OpenAI-compatible chat, Claude rawPredict
)

func (k Kind) String() string {
	switch k {
	case OpenAI:
		return "openai"
	case Anthropic:
		return "anthropic"
	case Azure:
		return "azure_openai"
	case Bedrock:
		return "bedrock"
	case Vertex:
		return "vertex"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Options configure Start.
type Options struct {
	Kind Kind
	// Credential is the key the server accepts: OpenAI "Authorization: Bearer
	// <Credential>"; Anthropic "x-api-key: <Credential>"; Azure "api-key:
	// <Credential>" or "Authorization: Bearer <Credential>". Anything else gets
	// the provider's 401. Empty disables the credential check (Anthropic still
	// requires anthropic-version).
	Credential string
	// FixturesDir is the fixtures root holding openai/, anthropic/ and
	// azure_openai/. Empty means test/testdata/fixtures of this module checkout.
	FixturesDir string
	// AWS is what Bedrock requests must be signed with; without an access key
	// the signature is not checked.
	AWS AWS
	// Tokens is the token endpoint whose access tokens Vertex requests must
	// carry; nil disables the check.
	Tokens *TokenEndpoint
}

// Request is one request as the server received it.
type Request struct {
	Method        string
	Path          string // r.URL.Path
	RawQuery      string
	Host          string
	Header        http.Header // a copy; Go moves Host to the Host field
	ContentLength int64       // as declared; -1 when chunked or unknown
	Body          []byte
}

// maxBody bounds the request body read; the gateway's buffer limit is 50 MiB.
const maxBody = 64 << 20

// Server is a running fake provider. Its methods are safe for concurrent use.
type Server struct {
	srv      *httptest.Server
	kind     Kind
	provider provider
	done     chan struct{} // closed by Close; releases held responses
	close    sync.Once

	mu       sync.Mutex
	requests []Request
	failures []Failure
	changed  chan struct{} // closed and replaced whenever a request is recorded
}

// provider is one provider's wire behaviour.
type provider interface {
	// handle answers a request. ok reports a successful answer, the only kind
	// that a queued Failure replaces: rejected requests (404, 401, 400) do not
	// consume failures.
	handle(r *http.Request, body []byte, id string) (rep reply, ok bool)
	// errorReply is the provider's error response for an HTTP status;
	// retryAfter (possibly empty) only shapes the message where the provider
	// names the delay in it.
	errorReply(status int, retryAfter, id string) reply
	// streamErrorReply turns a successful reply into one that fails inside the
	// stream (or, for a non-streamed reply, the provider's usual error status).
	streamErrorReply(normal reply, id string) reply
	// requestID is the provider-shaped request id for the n-th request (1-based).
	requestID(n int) string
}

// Start starts a fake provider on 127.0.0.1 with a random port, speaking plain
// HTTP/1.1.
func Start(opts Options) (*Server, error) {
	dir := opts.FixturesDir
	if dir == "" {
		var err error
		if dir, err = defaultFixturesDir(); err != nil {
			return nil, err
		}
	}
	fs := &fixtureSet{dir: dir}
	var p provider
	switch opts.Kind {
	case OpenAI:
		p = newOpenAI(fs, opts.Credential)
	case Anthropic:
		p = newAnthropic(fs, opts.Credential)
	case Azure:
		p = newAzure(fs, opts.Credential)
	case Bedrock:
		p = newBedrock(fs, opts.AWS)
	case Vertex:
		p = newVertex(fs, opts.Tokens)
	default:
		return nil, fmt.Errorf("fakeprovider: unknown kind %v", opts.Kind)
	}
	if fs.err != nil {
		return nil, fs.err
	}
	s := &Server{kind: opts.Kind, provider: p, done: make(chan struct{}), changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s, nil
}

// URL is the base URL, "http://127.0.0.1:<port>", without a trailing slash.
func (s *Server) URL() string { return s.srv.URL }

// Addr is the listener's "127.0.0.1:<port>".
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Close shuts the server down: connections of responses still held by
// SlowFirstByte are dropped, other handlers in flight are waited for. Safe to
// call more than once.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Requests returns copies of every request received so far, in arrival order,
// including rejected ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Fail queues failures. Each later request that would otherwise succeed takes
// the oldest queued failure, one per request.
func (s *Server) Fail(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	rec := Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		Host:          r.Host,
		Header:        r.Header.Clone(),
		ContentLength: r.ContentLength,
		Body:          body,
	}
	// Numbering, recording and taking a failure happen under one lock, so a
	// request counted by WaitRequests has already taken its failure. handle is
	// pure and cheap, so running it under the lock costs little.
	s.mu.Lock()
	id := s.provider.requestID(len(s.requests) + 1)
	var rep reply
	ok := false
	if readErr != nil || len(body) > maxBody {
		rep = s.provider.errorReply(http.StatusBadRequest, "", id) // broken or oversized upload
	} else {
		rep, ok = s.provider.handle(r, body, id)
	}
	s.requests = append(s.requests, rec)
	f, failed := s.takeFailureLocked(ok)
	s.notifyLocked()
	s.mu.Unlock()

	if !failed {
		writeReply(w, rep)
		return
	}
	switch f.kind {
	case failStatus:
		rep = s.provider.errorReply(f.status, f.retryAfter, id)
		if f.retryAfter != "" {
			rep.header.Set("Retry-After", f.retryAfter)
		}
		writeReply(w, rep)
	case failSlowFirstByte:
		select {
		case <-f.release:
			writeReply(w, rep)
		case <-r.Context().Done():
		case <-s.done:
			// Returning normally would send an empty 200; drop the
			// connection instead.
			panic(http.ErrAbortHandler)
		}
	case failReset:
		writeReset(w, rep, f.resetAfter)
	case failStreamError:
		writeReply(w, s.provider.streamErrorReply(rep, id))
	case failEcho:
		if s.kind == OpenAI {
			rep = echoReply(body, rep)
		}
		writeReply(w, rep)
	}
}

func (s *Server) takeFailureLocked(ok bool) (Failure, bool) {
	if !ok || len(s.failures) == 0 {
		return Failure{}, false
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	return f, true
}

// notifyLocked wakes WaitRequests callers.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitRequests blocks until at least n requests have been received and
// returns copies of all of them. A request that is counted has already taken
// its queued Failure, so after WaitRequests(ctx, 1) returns, a held
// (SlowFirstByte) first request stays held while later requests are answered
// normally.
func (s *Server) WaitRequests(ctx context.Context, n int) ([]Request, error) {
	for {
		s.mu.Lock()
		if len(s.requests) >= n {
			s.mu.Unlock()
			return s.Requests(), nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("fakeprovider: waiting for %d requests: %w", n, ctx.Err())
		case <-s.done:
			return nil, fmt.Errorf("fakeprovider: waiting for %d requests: server closed", n)
		}
	}
}

// reply is a complete response. A streamed reply is written one chunk (one SSE
// event) at a time with a flush after each, so clients really stream; a
// non-streamed reply is a single chunk with an exact Content-Length.
type reply struct {
	status int
	header http.Header
	chunks [][]byte
	stream bool
}

func (rep reply) size() int {
	n := 0
	for _, c := range rep.chunks {
		n += len(c)
	}
	return n
}

func writeHead(w http.ResponseWriter, rep reply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	if !rep.stream {
		w.Header().Set("Content-Length", fmt.Sprint(rep.size()))
	}
	w.WriteHeader(rep.status)
}

func writeReply(w http.ResponseWriter, rep reply) {
	writeHead(w, rep)
	rc := http.NewResponseController(w)
	for _, c := range rep.chunks {
		if _, err := w.Write(c); err != nil {
			return // client gone
		}
		if rep.stream {
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// writeReset sends the headers and the first n body bytes, then drops the TCP
// connection with an RST (SO_LINGER 0), so the client sees the body end
// abruptly: no terminating chunk, or fewer bytes than Content-Length.
func writeReset(w http.ResponseWriter, rep reply, n int) {
	writeHead(w, rep)
	rc := http.NewResponseController(w)
	for _, c := range rep.chunks {
		if n <= 0 {
			break
		}
		if len(c) > n {
			c = c[:n]
		}
		n -= len(c)
		if _, err := w.Write(c); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	// Hijack discards unflushed buffered output, hence the flushes above.
	conn, _, err := rc.Hijack()
	if err != nil {
		// Aborting the handler also closes the connection without finishing
		// the body.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
