package devfront

import (
	"context"
	"time"
)

// Options configures a stand-in.
type Options struct {
	// Bootstrap is the Envoy v3 bootstrap, YAML or JSON.
	Bootstrap []byte
	// Listener names the listener to emulate; "" selects the first one.
	Listener string
	// Addr is the loopback address to listen on; "" means 127.0.0.1:0 (a free port).
	Addr string
	// Clusters maps a cluster name to the loopback address that replaces its endpoints:
	// "127.0.0.1:port" for a plain HTTP/1.1 upstream, or for the ext_proc cluster a gRPC
	// target ("127.0.0.1:port" or "unix:///path"). A cluster with several endpoints (for
	// example priorities of a fallback chain) is pointed endpoint by endpoint instead:
	// "cluster/hostname" names the endpoints with that hostname (the endpoint's hostname,
	// else its DNS address), "cluster/#n" the n-th lb_endpoint in config order (from 0).
	// See Rewrite.Clusters. Clusters and endpoints not listed keep their bootstrap
	// address; the stand-in never dials a non-loopback address (such an attempt is a
	// connection failure).
	Clusters map[string]string
	// Version is the emulated Envoy minor version, 33 to 36 (0 means 36). It selects the
	// behaviours that changed between releases: mode_override DEFAULT semantics and
	// protocol_config (1.34+), fail-closed spurious replies (1.35+), status_on_error (1.36+).
	Version int
	// RequestChunks and ResponseChunks decide how body bytes become body callbacks (and so
	// STREAMED body messages). nil passes each read through as one chunk, as a codec does.
	RequestChunks, ResponseChunks Chunker
	// NewTimer, if set, replaces real timers for every timer the stand-in arms (see
	// TimerKind). It returns the channel that fires and a stop function.
	NewTimer func(kind TimerKind, d time.Duration) (<-chan time.Time, func() bool)
	// WarmCluster, if set, stands for the initial service discovery of each new or changed
	// CDS cluster (Envoy's DNS resolution or EDS load): the cluster warms until it returns,
	// and ctx ends when the cluster is superseded or removed first. nil warms at once.
	WarmCluster func(ctx context.Context, name string)

	// hook, for this package's tests, observes internal events (see hookXxx constants).
	hook func(event string)
}

// TimerKind names a timer the stand-in arms, so that an injected clock can tell them apart.
type TimerKind string

// The timers an emulated Envoy arms.
const (
	MessageTimeout    TimerKind = "message_timeout"      // ext_proc per-message timer (Envoy ext_proc: message_timeout and failure_mode_allow)
	RouteTimeout      TimerKind = "route_timeout"        // route timeout, from end of request
	StreamIdleTimeout TimerKind = "stream_idle_timeout"  // HCM stream_idle_timeout / route idle_timeout
	PerTryTimeout     TimerKind = "per_try_timeout"      // retry_policy.per_try_timeout
	PerTryIdleTimeout TimerKind = "per_try_idle_timeout" // retry_policy.per_try_idle_timeout
	RetryBackoff      TimerKind = "retry_backoff"        // the wait before a retry (retry_back_off, rate_limited_retry_back_off)

	XDSRetryBackoff        TimerKind = "xds_retry_backoff"         // the wait before a new ADS stream
	XDSInitialFetchTimeout TimerKind = "xds_initial_fetch_timeout" // a config source's initial_fetch_timeout
)

// Events reported to Options.hook (tests only).
const (
	hookRequestHeld    = "request_data_held"  // request data held while a headers reply is pending
	hookResponseHeld   = "response_data_held" // response data held while a headers reply is pending
	hookReqHeadersDone = "request_headers_reply_handled"
	hookPerTryIgnored  = "per_try_timeout_ignored" // a per-try timeout after the response started
	hookUpstreamDrop   = "upstream_local_reply_dropped"
)

// A Chunker decides where a body is cut into the pieces a codec would deliver. Cuts are
// placed by stream offset, so they are deterministic; a network read boundary always
// cuts too, as it does in Envoy.
type Chunker interface {
	// ChunkLen returns the length (≥1) of the chunk that starts at stream offset off.
	ChunkLen(off int64) int
	// EmptyEnd reports whether end of stream always arrives as a separate empty chunk
	// (an HTTP/2 DATA frame with END_STREAM and no payload, or a chunked terminator).
	EmptyEnd() bool
}

// Fixed cuts bodies into chunks of n bytes (n < 1 counts as 1).
func Fixed(n int) Chunker {
	if n < 1 {
		n = 1
	}
	return fixedChunker(n)
}

type fixedChunker int

func (c fixedChunker) ChunkLen(int64) int { return int(c) }
func (fixedChunker) EmptyEnd() bool       { return false }

// Random cuts bodies into chunks of 1 to max bytes, chosen by a hash of seed and offset,
// so that the same seed always cuts the same body the same way. Cuts land anywhere,
// including inside "\r\n" and inside UTF-8 sequences (Envoy ext_proc: STREAMED bodies arrive in arbitrary chunks; the stand-in notes in internal/devfront/doc.go).
func Random(seed int64, max int) Chunker {
	if max < 1 {
		max = 1
	}
	return randomChunker{seed: uint64(seed), max: uint64(max)}
}

type randomChunker struct{ seed, max uint64 }

func (c randomChunker) ChunkLen(off int64) int {
	// splitmix64 finaliser over seed and offset.
	z := c.seed + uint64(off)*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z%c.max) + 1
}
func (randomChunker) EmptyEnd() bool { return false }

// EmptyEnd wraps c so that end of stream always arrives as a separate empty chunk.
// A nil c passes reads through whole.
func EmptyEnd(c Chunker) Chunker { return emptyEnd{c} }

type emptyEnd struct{ c Chunker }

func (e emptyEnd) ChunkLen(off int64) int {
	if e.c == nil {
		return 0
	}
	return e.c.ChunkLen(off)
}
func (emptyEnd) EmptyEnd() bool { return true }

// cutter applies a Chunker to a stream of reads.
type cutter struct {
	c       Chunker
	off     int64 // stream offset of the next byte
	nextCut int64 // stream offset of the next cut; 0 = not yet computed
}

// cut splits one read into chunks. Reads are never merged.
func (ct *cutter) cut(p []byte) [][]byte {
	if len(p) == 0 {
		return nil
	}
	if ct.c == nil || ct.c.ChunkLen(0) < 1 {
		ct.off += int64(len(p))
		return [][]byte{p}
	}
	if ct.nextCut == 0 {
		ct.nextCut = int64(ct.c.ChunkLen(0))
	}
	var out [][]byte
	for len(p) > 0 {
		take := ct.nextCut - ct.off // > 0 by invariant
		if take > int64(len(p)) {
			take = int64(len(p))
		}
		out = append(out, p[:take:take])
		p = p[take:]
		ct.off += take
		if ct.off == ct.nextCut {
			ct.nextCut += int64(max(ct.c.ChunkLen(ct.nextCut), 1))
		}
	}
	return out
}
