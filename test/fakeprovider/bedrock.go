package fakeprovider

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/internal/eventstream"
	"github.com/tollgate-ai/tollgate/internal/eventstream/eventstreamtest"
)

// AWS configures the fake Bedrock: the region and credentials every request
// must be SigV4-signed with. The signature is checked by signing the received
// request again with the AWS SDK's own signer.
type AWS struct {
	Region                                     string // default us-east-1
	AccessKeyID, SecretAccessKey, SessionToken string
}

const contentEventStream = "application/vnd.amazon.eventstream"

// bedrock imitates bedrock-runtime.<region>.amazonaws.com's Converse and
// ConverseStream APIs.
type bedrock struct {
	aws                              AWS
	response, responseTools          []byte
	responseJSON, responseReasoning  []byte
	stream, streamTools, streamError [][]byte // one event-stream message per chunk
	streamJSON, streamReasoning      [][]byte
	err400, err429                   []byte
}

// jsonTool is the forced tool the gateway sends for response_format; the
// fake answers it with the JSON fixtures.
const jsonTool = "tollgate_json_object"

func newBedrock(fs *fixtureSet, a AWS) *bedrock {
	if a.Region == "" {
		a.Region = "us-east-1"
	}
	p := &bedrock{
		aws:               a,
		response:          fs.read("bedrock/converse_response.json"),
		responseTools:     fs.read("bedrock/converse_response_tool_use.json"),
		responseJSON:      fs.read("bedrock/converse_response_json.json"),
		responseReasoning: fs.read("bedrock/converse_response_reasoning.json"),
		err400:            fs.read("bedrock/error_400.json"),
		err429:            fs.read("bedrock/error_429.json"),
	}
	p.stream = eventMessages(fs, "bedrock/converse_stream.jsonl")
	p.streamTools = eventMessages(fs, "bedrock/converse_stream_tool_use.jsonl")
	p.streamError = eventMessages(fs, "bedrock/converse_stream_exception.jsonl")
	p.streamJSON = eventMessages(fs, "bedrock/converse_stream_json.jsonl")
	p.streamReasoning = eventMessages(fs, "bedrock/converse_stream_reasoning.jsonl")
	return p
}

// eventMessages encodes a .jsonl fixture as event-stream messages, one per
// chunk, so the fake flushes each message as Bedrock does.
func eventMessages(fs *fixtureSet, name string) [][]byte {
	b, err := eventstreamtest.FromJSONL(fs.read(name))
	if err != nil && fs.err == nil {
		fs.err = fmt.Errorf("fakeprovider: %s: %w", name, err)
	}
	var out [][]byte
	var d eventstream.Decoder
	d.Feed(b)
	start := 0
	for range len(b) {
		if _, ok := d.Next(); !ok {
			break
		}
		end := len(b) - d.Buffered()
		out = append(out, b[start:end])
		start = end
	}
	return out
}

func (p *bedrock) requestID(n int) string { return fmt.Sprintf("00000000-b3d0-4000-8000-%012d", n) }

func (p *bedrock) handle(r *http.Request, body []byte, id string) (reply, bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/model/")
	model, op, _ := strings.Cut(rest, "/")
	if !ok || r.Method != http.MethodPost || model == "" || (op != "converse" && op != "converse-stream") {
		return p.apiError(http.StatusNotFound, id, "UnknownOperationException", "Unknown operation"), false
	}
	creds := aws.Credentials{AccessKeyID: p.aws.AccessKeyID, SecretAccessKey: p.aws.SecretAccessKey, SessionToken: p.aws.SessionToken}
	if p.aws.AccessKeyID != "" {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+p.aws.AccessKeyID+"/") {
			return p.apiError(http.StatusForbidden, id, "UnrecognizedClientException", "The security token included in the request is invalid."), false
		}
		if p.aws.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != p.aws.SessionToken {
			return p.apiError(http.StatusForbidden, id, "UnrecognizedClientException", "The security token included in the request is invalid."), false
		}
		if err := cloudauth.VerifySigV4(r, body, creds, "bedrock", p.aws.Region); err != nil {
			return p.apiError(http.StatusForbidden, id, "InvalidSignatureException",
				"The request signature we calculated does not match the signature you provided."), false
		}
	}
	root := gjson.ParseBytes(body)
	switch {
	case !gjson.ValidBytes(body) || !root.IsObject():
		return p.apiError(http.StatusBadRequest, id, "ValidationException", "Malformed input request, please reformat your input and try again."), false
	case root.Get("model").Exists():
		return p.apiError(http.StatusBadRequest, id, "ValidationException", "extraneous key [model] is not permitted"), false
	case len(root.Get("messages").Array()) == 0:
		return p.apiError(http.StatusBadRequest, id, "ValidationException", "1 validation error detected: Value at 'messages' failed to satisfy constraint"), false
	}
	if msg := validateConverse(root); msg != "" {
		return p.apiError(http.StatusBadRequest, id, "ValidationException", msg), false
	}
	// The answer follows what the request asks for: the response_format tool
	// forced, Claude's thinking on, tools offered, or plain text.
	resp, events := p.response, p.stream
	thinking := root.Get("additionalModelRequestFields.thinking.type").Str
	switch {
	case root.Get("toolConfig.toolChoice.tool.name").Str == jsonTool:
		resp, events = p.responseJSON, p.streamJSON
	case thinking == "enabled" || thinking == "adaptive":
		resp, events = p.responseReasoning, p.streamReasoning
	case root.Get("toolConfig.tools").IsArray():
		resp, events = p.responseTools, p.streamTools
	}
	if op == "converse" {
		return reply{status: http.StatusOK, header: p.header(id, contentJSON), chunks: [][]byte{resp}}, true
	}
	return reply{status: http.StatusOK, header: p.header(id, contentEventStream), chunks: events, stream: true}, true
}

func (p *bedrock) header(id, contentType string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-Requestid", id)
	return h
}

func (p *bedrock) errorReply(status int, _ string, id string) reply {
	switch status {
	case http.StatusTooManyRequests:
		return p.errorBody(status, id, "ThrottlingException", p.err429)
	case http.StatusBadRequest:
		return p.errorBody(status, id, "ValidationException", p.err400)
	case http.StatusServiceUnavailable:
		return p.apiError(status, id, "ServiceUnavailableException", "Bedrock is unable to process your request.")
	case http.StatusForbidden:
		return p.apiError(status, id, "AccessDeniedException", "You don't have access to the model with the specified model ID.")
	}
	return p.apiError(status, id, "InternalServerException", "The server encountered an internal error.")
}

// apiError is Bedrock's error shape: the exception type in x-amzn-ErrorType,
// the body {"message": ...}.
func (p *bedrock) apiError(status int, id, typ, message string) reply {
	return p.errorBody(status, id, typ, marshal(struct {
		Message string `json:"message"`
	}{message}, ""))
}

func (p *bedrock) errorBody(status int, id, typ string, body []byte) reply {
	h := p.header(id, contentJSON)
	h.Set("X-Amzn-Errortype", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	return reply{status: status, header: h, chunks: [][]byte{body}}
}

func (p *bedrock) streamErrorReply(normal reply, id string) reply {
	if !normal.stream {
		return p.errorReply(http.StatusTooManyRequests, "", id)
	}
	return reply{status: http.StatusOK, header: p.header(id, contentEventStream), chunks: p.streamError, stream: true}
}

// validateConverse checks the parts of a Converse request the reference
// constrains and the gateway produces: every content, system and tool
// entry is a union with exactly one member set, a cachePoint has type
// default and an optional ttl of 5m or 1h and follows another block, and
// a forced toolChoice names an offered tool. It returns Bedrock's message
// for the first violation, "" for none.
func validateConverse(root gjson.Result) string {
	union := func(where string, list gjson.Result) string {
		for i, b := range list.Array() {
			n := 0
			b.ForEach(func(_, _ gjson.Result) bool { n++; return true })
			if !b.IsObject() || n != 1 {
				return fmt.Sprintf("%s.%d must set exactly one member", where, i)
			}
			if cp := b.Get("cachePoint"); cp.Exists() {
				if cp.Get("type").Str != "default" || (cp.Get("ttl").Exists() && cp.Get("ttl").Str != "5m" && cp.Get("ttl").Str != "1h") {
					return fmt.Sprintf("%s.%d.cachePoint is invalid", where, i)
				}
				if i == 0 {
					return fmt.Sprintf("%s.%d: a cachePoint must follow content", where, i)
				}
			}
		}
		return ""
	}
	if msg := union("system", root.Get("system")); msg != "" {
		return msg
	}
	for i, m := range root.Get("messages").Array() {
		if msg := union(fmt.Sprintf("messages.%d.content", i), m.Get("content")); msg != "" {
			return msg
		}
	}
	tools := root.Get("toolConfig.tools")
	if msg := union("toolConfig.tools", tools); msg != "" {
		return msg
	}
	if name := root.Get("toolConfig.toolChoice.tool.name"); name.Exists() {
		for _, t := range tools.Array() {
			if t.Get("toolSpec.name").Str == name.Str {
				return ""
			}
		}
		return "The tool named in toolChoice is not offered in toolConfig.tools."
	}
	return ""
}
