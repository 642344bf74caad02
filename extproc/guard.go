package extproc

import (
	"errors"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
)

// Guardrails: the app's policy (never the request's choice) checks the
// prompt before it goes upstream — blocking, redacting or flagging — and the
// completion as it comes back, streams included, holding back at most the
// policy's window.

// guardInputStep names guard_input in every processor.
const guardInputStep = "guard_input"

// stepGuardInput is guard_input over the pieces an endpoint's body has.
func stepGuardInput(collect ...pieceCollector) bodyStep {
	return bodyStep{guardInputStep, func(x *exchange, req *upstreamRequest) error { return guardInput(x, req, collect) }}
}

// inputPieces are the texts guard_input checks, with where each is in the
// body.
type inputPieces struct {
	in     guardrails.Input
	values []gjson.Result
}

func (p *inputPieces) add(role, text string, v gjson.Result) {
	p.in.Pieces = append(p.in.Pieces, guardrails.Piece{Role: role, Text: text})
	p.values = append(p.values, v)
}

// pieceCollector finds the texts of one part of a request body. Paths for
// the test-only read hook are built only when it is set.
type pieceCollector func(x *exchange, req *upstreamRequest, p *inputPieces)

// chatPieces are the messages' text contents and tool call arguments.
func chatPieces(x *exchange, req *upstreamRequest, p *inputPieces) {
	req.get("messages").ForEach(func(i, m gjson.Result) bool {
		role := m.Get("role").Str
		switch c := m.Get("content"); {
		case c.Type == gjson.String:
			p.add(role, c.Str, c)
			if x.reads != nil {
				x.read("messages."+i.String()+".content", c)
			}
		case c.IsArray():
			c.ForEach(func(j, part gjson.Result) bool {
				if t := part.Get("text"); part.Get("type").Str == "text" && t.Type == gjson.String {
					p.add(role, t.Str, t)
					if x.reads != nil {
						x.read("messages."+i.String()+".content."+j.String()+".text", t)
					}
				}
				return true
			})
		}
		m.Get("tool_calls").ForEach(func(k, tc gjson.Result) bool {
			if a := tc.Get("function.arguments"); a.Type == gjson.String {
				p.add(role, a.Str, a)
				if x.reads != nil {
					x.read("messages."+i.String()+".tool_calls."+k.String()+".function.arguments", a)
				}
			}
			return true
		})
		return true
	})
}

// embeddingPieces are an embeddings request's input strings.
func embeddingPieces(x *exchange, req *upstreamRequest, p *inputPieces) {
	switch v := req.get("input"); {
	case v.Type == gjson.String:
		p.add("user", v.Str, v)
		x.read("input", v)
	case v.IsArray():
		v.ForEach(func(j, s gjson.Result) bool {
			if s.Type == gjson.String {
				p.add("user", s.Str, s)
				if x.reads != nil {
					x.read("input."+j.String(), s)
				}
			}
			return true
		})
	}
}

// guardInput checks the prompt and writes redactions back into the body.
func guardInput(x *exchange, req *upstreamRequest, collect []pieceCollector) error {
	if x.app == nil || x.app.GuardrailPolicy == "" || x.snap.Guardrails == nil {
		return nil
	}
	pol, ok := x.snap.Guardrails.Policy(x.app.GuardrailPolicy)
	if !ok { // config validation makes this impossible; fail closed anyway
		return oaierror.Internal(500, "guardrail_unavailable", "The app's guardrail policy is not available.")
	}
	x.guard = pol.NewRequest()
	maxTokens := max(req.get("max_tokens").Int(), req.get("max_completion_tokens").Int())
	p := inputPieces{in: guardrails.Input{GroundingContext: x.grounding, MaxTokens: int(maxTokens)}}
	for _, c := range collect {
		c(x, req, &p)
	}
	edits, err := x.guard.CheckInput(p.in)
	if err != nil {
		var b *guardrails.Blocked
		if errors.As(err, &b) {
			return guardError(err)
		}
		return failure(guardError(err), err)
	}
	for _, e := range edits {
		if !req.setString(p.values[e.Index], e.Text) {
			return failure(errRewrite(), errors.New("a redacted value is not where it was read"))
		}
	}
	// The vault keeps the redacted originals, which alias the body: it
	// must not be rewritten in place.
	req.pinned = req.pinned || len(edits) > 0
	return nil
}

// guardError turns a guardrail verdict into the client's refusal. It names
// the guardrail and never echoes the matched content.
func guardError(err error) *oaierror.Error {
	var b *guardrails.Blocked
	if errors.As(err, &b) {
		return &oaierror.Error{Status: guardrails.BlockedStatus, Type: guardrails.BlockedType, Code: guardrails.BlockedCode,
			Param: b.Param, Message: b.Message()}
	}
	return oaierror.Internal(500, "guardrail_failed", "The gateway could not apply its guardrails.")
}

// guardErrorEvent ends a stream a guardrail blocked: a terminal SSE error
// event in OpenAI's format.
func guardErrorEvent(err error) []byte {
	b := append([]byte("data: "), guardError(err).Body()...)
	return append(b, "\n\n"...)
}

// outputGuard applies the output guardrails to OpenAI chat completion chunks,
// one guarded stream per choice's content and per tool call's arguments.
type outputGuard struct {
	req     *guardrails.Request
	content map[int64]*guardrails.Stream
	tools   map[[2]int64]*guardrails.Stream
}

func newOutputGuard(r *guardrails.Request) *outputGuard {
	if r == nil || !r.OutputActive() {
		return nil
	}
	return &outputGuard{req: r, content: map[int64]*guardrails.Stream{}, tools: map[[2]int64]*guardrails.Stream{}}
}

// chunk rewrites one chunk's JSON: each delta's text is replaced by what the
// guard releases now, and a choice that finishes gets the guard's held-back
// rest. A block is returned as the error.
func (g *outputGuard) chunk(data []byte) ([]byte, error) {
	choices := gjson.GetBytes(data, "choices")
	if !choices.IsArray() {
		return data, nil
	}
	var ferr error
	choices.ForEach(func(i, c gjson.Result) bool {
		idx := c.Get("index").Int()
		base := "choices." + i.String() + ".delta"
		if t := c.Get("delta.content"); t.Type == gjson.String {
			out, err := g.stream(g.content, idx, guardrails.Content).Write(t.Str)
			if data, ferr = setOrFail(data, base+".content", out, err); ferr != nil {
				return false
			}
		}
		c.Get("delta.tool_calls").ForEach(func(k, tc gjson.Result) bool {
			a := tc.Get("function.arguments")
			if a.Type != gjson.String {
				return true
			}
			key := [2]int64{idx, tc.Get("index").Int()}
			s := g.tools[key]
			if s == nil {
				s = g.req.NewStream(guardrails.ToolArguments)
				g.tools[key] = s
			}
			out, err := s.Write(a.Str)
			data, ferr = setOrFail(data, base+".tool_calls."+k.String()+".function.arguments", out, err)
			return ferr == nil
		})
		if ferr != nil {
			return false
		}
		if f := c.Get("finish_reason"); f.Exists() && f.Type != gjson.Null {
			if s := g.content[idx]; s != nil {
				rest, err := s.Close()
				if err != nil {
					ferr = err
					return false
				}
				if rest != "" {
					prev := gjson.GetBytes(data, base+".content").Str
					b, err := sjson.SetBytes(data, base+".content", prev+rest)
					if err != nil {
						ferr = err // fails closed: the stream ends with guardrail_failed
						return false
					}
					data = b
				}
				delete(g.content, idx)
			}
			for key, s := range g.tools {
				if key[0] != idx {
					continue
				}
				rest, err := s.Close()
				if err != nil {
					ferr = err
					return false
				}
				if rest != "" {
					// The rest of a tool call's arguments goes out as one more
					// fragment on the finishing chunk.
					b, err := sjson.SetRawBytes(data, base+".tool_calls.-1",
						[]byte(`{"index":`+strconv.FormatInt(key[1], 10)+`,"function":{"arguments":`+string(oaierror.AppendString(nil, rest))+`}}`))
					if err != nil {
						ferr = err // fails closed, as above
						return false
					}
					data = b
				}
				delete(g.tools, key)
			}
		}
		return true
	})
	return data, ferr
}

func (g *outputGuard) stream(m map[int64]*guardrails.Stream, idx int64, kind guardrails.StreamKind) *guardrails.Stream {
	s := m[idx]
	if s == nil {
		s = g.req.NewStream(kind)
		m[idx] = s
	}
	return s
}

func setOrFail(data []byte, path, text string, err error) ([]byte, error) {
	if err != nil {
		return data, err
	}
	b, serr := sjson.SetBytes(data, path, text)
	if serr != nil {
		return data, serr
	}
	return b, nil
}

// response checks a whole non-streamed chat completion.
func (g *outputGuard) response(body []byte) ([]byte, error) {
	var ferr error
	gjson.GetBytes(body, "choices").ForEach(func(i, c gjson.Result) bool {
		base := "choices." + i.String() + ".message"
		if t := c.Get("message.content"); t.Type == gjson.String {
			out, err := g.req.CheckOutput(guardrails.Content, t.Str)
			if body, ferr = setOrFail(body, base+".content", out, err); ferr != nil {
				return false
			}
		}
		c.Get("message.tool_calls").ForEach(func(k, tc gjson.Result) bool {
			if a := tc.Get("function.arguments"); a.Type == gjson.String {
				out, err := g.req.CheckOutput(guardrails.ToolArguments, a.Str)
				body, ferr = setOrFail(body, base+".tool_calls."+k.String()+".function.arguments", out, err)
			}
			return ferr == nil
		})
		return ferr == nil
	})
	return body, ferr
}

// logDecisions records every guardrail decision: which guardrail, what it
// did, for which app and request. Never the content.
func (x *exchange) logDecisions() {
	if x.guard == nil {
		return
	}
	for _, d := range x.guard.Decisions() {
		x.srv.log.Info("guardrail",
			zap.String("request_id", x.rec.requestID), zap.String("tenant", x.rec.tenant), zap.String("app", x.rec.app),
			zap.String("policy", x.app.GuardrailPolicy), zap.String("guardrail", d.Guardrail), zap.String("stage", string(d.Stage)),
			zap.String("action", string(d.Action)), zap.Int("count", d.Count), zap.Float64("score", d.Score))
		x.srv.metrics.guardrail(d.Guardrail, string(d.Stage), string(d.Action))
	}
}
