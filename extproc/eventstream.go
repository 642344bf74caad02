package extproc

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/eventstream"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// Streams that are not SSE: Bedrock's ConverseStream answers in AWS's binary
// event-stream framing. The stream reader takes its messages from an
// eventStreamSource where it would scan SSE events and hands each to the
// schema's Stream translator; the client still receives OpenAI SSE chunks.

// isStreamBody reports whether a 200 response's content type is the stream
// framing schema s streams in.
func isStreamBody(s translate.Schema, contentType string) bool {
	if translate.FramingOf(s) == translate.FramingEventStream {
		return strings.HasPrefix(contentType, "application/vnd.amazon.eventstream")
	}
	return strings.HasPrefix(contentType, "text/event-stream")
}

// eventStreamSource decodes event-stream messages into the events a Stream
// takes (see translate.FramingEventStream).
type eventStreamSource struct {
	dec     eventstream.Decoder
	errData []byte // payload built for an error message
}

func newEventStreamSource() *eventStreamSource {
	s := &eventStreamSource{}
	s.dec.MaxMessageSize = maxEventSize
	return s
}

func (s *eventStreamSource) feed(p []byte, _ bool) { s.dec.Feed(p) }

func (s *eventStreamSource) next() (sse.Event, bool) {
	for {
		m, more := s.dec.Next()
		if !more {
			return sse.Event{}, false
		}
		if name, data := s.event(m); name != nil {
			return sse.Event{Name: name, Data: data}, true
		}
	}
}

// drained ends the input at eos: a message cut short ends the stream as
// incomplete (err). Finish comes after the last Next so the messages the
// chunk completed are read first.
func (s *eventStreamSource) drained(eos bool) {
	if eos {
		_ = s.dec.Finish()
	}
}

func (s *eventStreamSource) err() error   { return s.dec.Err() }
func (s *eventStreamSource) rest() []byte { return nil } // binary framing never reaches an SSE client

// event returns the name and data a Stream takes for one message; a nil
// name skips the message.
func (s *eventStreamSource) event(m eventstream.Message) (name, data []byte) {
	switch string(m.Get(":message-type")) {
	case "event":
		return m.Get(":event-type"), m.Payload
	case "exception":
		return append([]byte(translate.ExceptionPrefix), m.Get(":exception-type")...), m.Payload
	case "error":
		s.errData = append(s.errData[:0], `{"message":`...)
		s.errData = oaierror.AppendString(s.errData, string(m.Get(":error-message")))
		s.errData = append(s.errData, '}')
		return append([]byte(translate.ExceptionPrefix), m.Get(":error-code")...), s.errData
	}
	return nil, nil
}

// eventStreamText counts the completion text of a Bedrock event: text and
// tool-input deltas.
func eventStreamText(data []byte) int {
	d := gjson.Get(view(data), "delta")
	if !d.Exists() {
		return 0
	}
	return len(d.Get("text").Str) + len(d.Get("toolUse.input").Str)
}
