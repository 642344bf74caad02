package fakeprovider

// Failure replaces the answer to one otherwise successful request. Build it
// with Status, SlowFirstByte, ResetAfter or StreamError and queue it with
// Server.Fail.
type Failure struct {
	kind       failureKind
	status     int
	retryAfter string
	release    <-chan struct{}
	resetAfter int
}

type failureKind int

const (
	failStatus failureKind = iota + 1
	failSlowFirstByte
	failReset
	failStreamError
)

// Status answers with the provider's error body for code (the fixture where
// one exists: OpenAI 400/401/429/500, Anthropic 401/429/529; otherwise a body
// in the provider's error shape) and, when retryAfter is not empty, a
// Retry-After header with that value.
func Status(code int, retryAfter string) Failure {
	return Failure{kind: failStatus, status: code, retryAfter: retryAfter}
}

// SlowFirstByte holds the normal answer, sending nothing (not even headers),
// until release is closed. It gives up when the client goes away, and drops
// the connection when the server closes; a nil release holds until one of
// those happens.
func SlowFirstByte(release <-chan struct{}) Failure {
	return Failure{kind: failSlowFirstByte, release: release}
}

// ResetAfter sends the normal status and headers and the first n bytes of the
// normal body, then resets the TCP connection. Non-streamed answers keep their
// full Content-Length, so the client sees a short body; streamed answers stop
// without the terminating chunk. Use n smaller than the body.
func ResetAfter(n int) Failure {
	return Failure{kind: failReset, resetAfter: n}
}

// StreamError fails inside a stream after HTTP 200. Anthropic serves
// messages_stream_error.sse (event: error, then the connection ends without
// message_stop). OpenAI and Azure send the first half of the normal stream's
// events, then a data: event holding error_500.json's error object, and end
// the body without [DONE] (openai-go reports this as a streaming error). For a
// non-streamed request it is the provider's usual overload answer: Anthropic
// 529, OpenAI and Azure 500.
func StreamError() Failure {
	return Failure{kind: failStreamError}
}
