package extproc

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/eventstream"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// Streams that are not SSE: Bedrock's ConverseStream answers in AWS's binary
// event-stream framing. The processor decodes its messages where it would
// scan SSE events and hands each to the schema's Stream translator; the
// client still receives OpenAI SSE chunks.

// isStreamBody reports whether a 200 response's content type is the stream
// framing the provider's schema streams in.
func (x *exchange) isStreamBody(contentType string) bool {
	if tr := x.target.Provider.Translator; tr != nil && translate.FramingOf(tr) == translate.FramingEventStream {
		return strings.HasPrefix(contentType, "application/vnd.amazon.eventstream")
	}
	return strings.HasPrefix(contentType, "text/event-stream")
}

// translatedStream returns the reader for a translated stream, by framing.
func (x *exchange) translatedStream(tr translate.Schema) bodyReader {
	r := &translatingReader{x: x, st: tr.NewStream(x.target.Model, x.clientUsage), guard: newOutputGuard(x.guard)}
	if translate.FramingOf(tr) == translate.FramingEventStream {
		return &eventStreamReader{translatingReader: r}
	}
	return r
}

// eventStreamReader is a translatingReader fed by the event-stream decoder
// instead of the SSE scanner.
type eventStreamReader struct {
	*translatingReader
	dec     eventstream.Decoder
	errData []byte // payload built for an error message
}

func (r *eventStreamReader) chunk(p []byte, eos bool) ([]byte, bool) {
	if r.dec.MaxMessageSize == 0 {
		r.dec.MaxMessageSize = maxEventSize
	}
	if out, stop := r.stopped(); stop {
		return out, true
	}
	r.dec.Feed(p)
	for {
		m, more := r.dec.Next()
		if !more {
			break
		}
		name, data := r.event(m)
		if name == nil {
			continue
		}
		if d := gjson.Get(view(data), "delta"); d.Exists() {
			r.text += len(d.Get("text").Str) + len(d.Get("toolUse.input").Str)
		}
		if r.emit(name, data) {
			r.terminated = true
			return r.out, true
		}
	}
	if eos {
		_ = r.dec.Finish() // a message cut short ends the stream as incomplete
	}
	if r.dec.Err() != nil {
		// A corrupt or oversized message: end the client's stream honestly.
		eos = true
	}
	if eos {
		r.complete = r.end()
	}
	return r.out, true
}

// event returns the name and data a Stream takes for one message (see
// translate.FramingEventStream); a nil name skips the message.
func (r *eventStreamReader) event(m eventstream.Message) (name, data []byte) {
	switch string(m.Get(":message-type")) {
	case "event":
		return m.Get(":event-type"), m.Payload
	case "exception":
		return append([]byte(translate.ExceptionPrefix), m.Get(":exception-type")...), m.Payload
	case "error":
		r.errData = append(r.errData[:0], `{"message":`...)
		r.errData = oaierror.AppendString(r.errData, string(m.Get(":error-message")))
		r.errData = append(r.errData, '}')
		return append([]byte(translate.ExceptionPrefix), m.Get(":error-code")...), r.errData
	}
	return nil, nil
}

// emit translates one provider event, guards the output and puts the
// metering comment before [DONE]. It reports whether a guardrail ended the
// stream.
func (r *translatingReader) emit(name, data []byte) (blocked bool) {
	start := len(r.out)
	r.out = r.st.Event(r.out, name, data)
	if r.guard != nil && len(r.out) > start {
		if r.out, blocked = r.guardOutput(r.out, start); blocked {
			return true
		}
	}
	if i := bytes.Index(r.out[start:], doneLine); i >= 0 && !r.commented {
		r.commented = true
		r.out = insertAt(r.out, start+i, r.x.meterComment())
	}
	return false
}
