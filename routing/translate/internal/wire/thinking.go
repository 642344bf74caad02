package wire

import (
	"math"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// Claude's extended thinking, shared by the translations that reach Claude
// (Anthropic's Messages API, and Bedrock's additionalModelRequestFields,
// which takes the same object).

// minThinkingBudget is the smallest thinking budget Claude accepts.
const minThinkingBudget = 1024

// EnabledThinking returns the {type: enabled, budget_tokens} object for an
// OpenAI reasoning_effort other than none: 2048 tokens (minimal, low), 8192
// (medium), 16384 (high) or 32768 (xhigh, max), at most half of maxTokens so
// the answer keeps room, and never below 1024. A maxTokens that leaves no
// room for that is a 400 naming reasoning_effort.
func EnabledThinking(effort string, maxTokens int64) (string, error) {
	budget := min(effortBudget(effort), max(minThinkingBudget, maxTokens/2))
	if budget >= maxTokens {
		return "", InvalidBody("reasoning_effort", "reasoning_effort needs max_completion_tokens above "+strconv.Itoa(minThinkingBudget)+" for this model: thinking needs a budget of at least "+strconv.Itoa(minThinkingBudget)+" tokens below the limit.")
	}
	return `{"type":"enabled","budget_tokens":` + strconv.FormatInt(budget, 10) + `}`, nil
}

func effortBudget(effort string) int64 {
	switch effort {
	case "minimal", "low":
		return 2048
	case "medium":
		return 8192
	case "high":
		return 16384
	}
	return 32768
}

// ThinkingObject validates a client's thinking object ({type: enabled,
// budget_tokens}, {type: adaptive} or {type: disabled}, with an optional
// display) and rebuilds it from the keys Claude defines.
func ThinkingObject(th gjson.Result) (string, error) {
	if !th.IsObject() {
		return "", InvalidType("thinking", "an object")
	}
	typ := th.Get("type").String()
	out := `{"type":` + strconv.Quote(typ)
	var err error
	th.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
		case "budget_tokens":
			if typ != "enabled" || v.Type != gjson.Number || v.Num < 1 || v.Num > math.MaxInt32 || v.Num != math.Trunc(v.Num) {
				err = InvalidBody("thinking.budget_tokens", "thinking.budget_tokens must be a positive integer, with type enabled.")
				return false
			}
			out += `,"budget_tokens":` + v.Raw
		case "display":
			if v.Type != gjson.String {
				err = InvalidType("thinking.display", "a string")
				return false
			}
			out += `,"display":` + v.Raw
		default:
			err = UnsupportedParam("thinking."+k.Str, "thinking."+k.Str+" is not supported.")
			return false
		}
		return true
	})
	if err != nil {
		return "", err
	}
	switch typ {
	case "enabled":
		if !th.Get("budget_tokens").Exists() {
			return "", InvalidBody("thinking.budget_tokens", "thinking type enabled needs budget_tokens.")
		}
	case "adaptive", "disabled":
	default:
		return "", InvalidBody("thinking.type", "thinking.type must be one of enabled, adaptive, disabled.")
	}
	return out + "}", nil
}

// AppendThinkingBlock appends a thinking block as chat answers carry it in
// thinking_blocks (and clients replay it): its text and signature.
func AppendThinkingBlock(out []byte, text, signature string) []byte {
	out = append(out, `{"type":"thinking","thinking":`...)
	out = oaierror.AppendString(out, text)
	out = append(out, `,"signature":`...)
	out = oaierror.AppendString(out, signature)
	return append(out, '}')
}

// AppendRedactedBlock appends a redacted_thinking block: its opaque data.
func AppendRedactedBlock(out []byte, data string) []byte {
	out = append(out, `{"type":"redacted_thinking","data":`...)
	out = oaierror.AppendString(out, data)
	return append(out, '}')
}
