package translate

import "bytes"

// Framing is how a provider frames a streamed response.
type Framing int

// Stream framings.
const (
	// FramingSSE is text/event-stream: the processor scans SSE events and
	// passes each event's name and data to Stream.Event.
	FramingSSE Framing = iota
	// FramingEventStream is AWS's binary application/vnd.amazon.eventstream
	// (Bedrock ConverseStream): the processor decodes messages and passes
	// each event message's :event-type header as the name and its payload as
	// the data. Exception and error messages are passed with the name
	// ExceptionPrefix + their :exception-type (or :error-code) and their JSON
	// payload (for error messages, {"message": :error-message}).
	FramingEventStream
)

// ExceptionPrefix marks an event-stream exception or error message in the
// name passed to Stream.Event.
const ExceptionPrefix = "exception:"

// Framed is implemented by schemas whose streams are not SSE. A Schema that
// does not implement it streams SSE.
type Framed interface {
	Framing() Framing
}

// FramingOf returns the stream framing of a schema.
func FramingOf(s Schema) Framing {
	if f, ok := s.(Framed); ok {
		return f.Framing()
	}
	return FramingSSE
}

// ModelPath is implemented by schemas whose upstream path names the model or
// differs for streams (Bedrock's /model/{id}/converse-stream, Vertex AI's
// :streamRawPredict). It takes precedence over Schema.Path for the path sent;
// Schema.Path still reports whether an endpoint is offered.
type ModelPath interface {
	ModelPath(endpointSuffix, model string, stream bool) (path string, ok bool)
}

// AppendData appends data as one SSE event: a "data: " line per line of
// data, then the blank line that ends the event, so an SSE reader joins the
// lines back into data.
func AppendData(out, data []byte) []byte {
	for {
		line, rest, more := bytes.Cut(data, []byte("\n"))
		out = append(out, "data: "...)
		out = append(out, line...)
		out = append(out, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(out, '\n')
}
