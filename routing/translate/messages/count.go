package messages

import (
	"strconv"
)

// bytesPerToken is the gateway's token estimate, the rule of
// extproc/meter.go's estimateTokens: about four bytes of JSON per token.
// count_tokens uses the same rule so that its answer agrees with what
// admission reserves for the same body.
const bytesPerToken = 4

// Estimate answers POST /v1/messages/count_tokens for a target that cannot
// count tokens itself: {"input_tokens":N} with N = ceil(len(body)/4). The
// processor must flag the answer as an estimate (in a response header). A
// body that is not a JSON object with messages gets a 400 *Error.
func Estimate(body []byte) (n int64, out []byte, err error) {
	root, perr := parseObject(body)
	if perr != nil {
		return 0, nil, &Error{Status: 400, Type: TypeInvalidRequest, Message: "The request body must be a JSON object."}
	}
	if !root.Get("messages").IsArray() {
		return 0, nil, invalid("messages", "Field required.")
	}
	n = int64((len(body) + bytesPerToken - 1) / bytesPerToken)
	out = strconv.AppendInt([]byte(`{"input_tokens":`), n, 10)
	return n, append(out, '}'), nil
}
