package extproc

// Outcomes: how an exchange ended for the client, in the log line's
// "outcome" field.
const (
	outcomeCompleted  = "completed"  // the response reached its end, complete
	outcomeRefused    = "refused"    // the gateway refused the request (refusal says why)
	outcomeIncomplete = "incomplete" // the provider's stream ended early or with an error; the client got an error event
	outcomeTerminated = "terminated" // the gateway ended the stream (guardrail, budget)
	outcomeReset      = "reset"      // the exchange ended before the response did: upstream reset, client gone, timeout
)

// settleOutcome records how the exchange ended, and the status the client
// saw. When Envoy ends the ext_proc stream before the response's end of
// stream, the cause (upstream reset, client gone, timeout) is not told to
// the processor: the outcome is "reset". A response still held in BUFFERED
// mode never reached the client, which saw the stream reset and no status:
// status 0, as Envoy's own access log writes %RESPONSE_CODE% for a request
// that never got the beginning of a response
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#command-operators).
// A streamed response's headers had already left, so its 200 stands.
func (x *exchange) settleOutcome() {
	r := &x.rec
	switch {
	case x.done && r.refusal != "":
		r.outcome = outcomeRefused
	case x.done && x.body != nil && x.body.outcome() != "":
		r.outcome = x.body.outcome() // a mock answer an output guardrail ended
	case x.done:
		r.outcome = outcomeCompleted // answered by the gateway (GET /v1/models, schema mock)
	case !x.respEnded:
		r.outcome = outcomeReset
		if _, held := x.body.(*jsonReader); held || x.body == nil {
			r.status = 0
		}
	case x.body != nil && x.body.outcome() != "":
		r.outcome = x.body.outcome()
	default:
		r.outcome = outcomeCompleted
	}
}
