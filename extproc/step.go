package extproc

import (
	"errors"

	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// A step is one named stage of a request chain: it does one thing, reads
// and writes the request's facts, and refuses the request by returning an
// error. The name is what refusal logs, the refusal metric and the tests
// call it by. Steps never branch on the endpoint: a processor lists the
// steps its endpoint needs (processor.go).

// headerStep runs on request_headers. It may add to the reply's mutation.
type headerStep struct {
	name string
	run  func(x *exchange, h headers, mu *mutation) error
}

// bodyStep runs on the buffered request body. It may rewrite req.body and
// add to the reply's mutation.
type bodyStep struct {
	name string
	run  func(x *exchange, req *upstreamRequest) error
}

// Name is the step's name as logs and metrics report it.
func (s headerStep) Name() string { return s.name }

// Name is the step's name as logs and metrics report it.
func (s bodyStep) Name() string { return s.name }

// stepError is a refusal with its home: the error the client gets, the
// internal cause (never sent to the client, logged), and the step that
// refused.
type stepError struct {
	step   string
	client *oaierror.Error
	cause  error
}

func (e *stepError) Error() string {
	s := e.step + ": " + e.client.Code
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *stepError) Unwrap() error { return e.cause }

// failure is a refusal with an internal cause: the client sees client, the
// log sees cause. A step returns a bare *oaierror.Error when the refusal
// needs no cause (the client's own mistake).
func failure(client *oaierror.Error, cause error) error {
	return &stepError{client: client, cause: cause}
}

// errOverlap is the cause of a rewrite_failed refusal: two queued body
// edits overlap, which the steps never queue.
var errOverlap = errors.New("overlapping body edits")

// stepFailed gives a step's error its step name. An error that is neither a
// stepError nor an *oaierror.Error is an internal failure. It returns a
// value: a refusal costs no allocation beyond the client's error.
func stepFailed(step string, err error) stepError {
	switch e := err.(type) {
	case *stepError:
		out := *e
		out.step = step
		return out
	case *oaierror.Error:
		return stepError{step: step, client: e}
	}
	return stepError{step: step, cause: err,
		client: oaierror.Internal(500, "internal_error", "The gateway could not process the request.")}
}

// log is the request's logger: the server's, with request_id, tenant and
// key_id as far as they are known when it is called. It is built on demand,
// so the success path pays nothing for it.
func (x *exchange) log() *zap.Logger {
	fields := make([]zap.Field, 0, 3)
	if x.rec.requestID != "" {
		fields = append(fields, zap.String("request_id", x.rec.requestID))
	}
	tenant := x.rec.tenant
	if tenant == "" && x.key != nil {
		tenant = x.key.Tenant
	}
	if tenant != "" {
		fields = append(fields, zap.String("tenant", tenant))
	}
	if x.rec.keyID != "" {
		fields = append(fields, zap.String("key_id", x.rec.keyID))
	}
	return x.srv.log.With(fields...)
}
