// Package messages serves Anthropic's Messages API (POST /v1/messages and
// /v1/messages/count_tokens, anthropic-version 2023-06-01) on the gateway,
// for clients such as Claude Code and the Anthropic SDKs.
//
// For targets that speak Anthropic natively the body passes through, and
// this package only reads it: usage ([ReadUsage], [UsageReader]), the text
// guardrails check ([Prompt], [Redact], [Delta], [SetDelta]). For
// OpenAI-schema targets it translates: the request to Chat Completions
// ([ToChat]), the response back ([FromChat]), the stream back event by event
// ([Stream]), and count_tokens becomes an estimate ([Estimate]). Every
// refusal is an [*Error] in Anthropic's error format; [FromOpenAI] converts
// the gateway's own OpenAI-format refusals.
//
// The package is pure: no I/O, no package state; a Stream or UsageReader
// belongs to one response.
//
// # Request translation (Anthropic Messages → OpenAI Chat Completions)
//
//	model                      → model (RequestOptions.Model when set)
//	max_tokens (required)      → max_completion_tokens
//	system (string or blocks)  → first message, role system; blocks' text joined with "\n"
//	messages[].content string  → content string
//	text block                 → text part (a lone text block → content string)
//	image block, base64 / url  → image_url part (data URL / the URL)
//	document block, base64 PDF → file part (file_data data URL); text source → text part
//	assistant tool_use         → assistant tool_calls (arguments = input as JSON text)
//	user tool_result           → one tool message per result, before the user's other
//	                             parts; its text blocks joined with "\n"; its images
//	                             follow in a user message (tool messages carry no images)
//	tools[] (custom tools)     → tools[] function; input_schema → parameters ("type":
//	                             "object" added when absent); strict → strict
//	tool_choice auto/any/tool/none → "auto"/"required"/{function}/"none";
//	  disable_parallel_tool_use → parallel_tool_calls: false
//	thinking enabled, budget_tokens → reasoning_effort: < 4096 low, < 16384 medium,
//	                             else high (Claude Code's think / think hard /
//	                             ultrathink budgets land on low / medium / high);
//	                             disabled and adaptive → no reasoning_effort (the
//	                             provider's default)
//	output_config.effort       → reasoning_effort (wins over thinking)
//	output_config.format json_schema → response_format json_schema
//	stop_sequences             → stop
//	temperature, top_p         → temperature, top_p (values kept as sent)
//	stream                     → stream, with stream_options.include_usage so the
//	                             final message_delta can report usage
//	metadata.user_id           → user
//
// Ignored, because they change nothing an OpenAI-schema provider can honour
// and refusing them would break ordinary clients: cache_control anywhere
// (OpenAI-schema providers cache prompts automatically), service_tier,
// citations on replayed text blocks, tool_result is_error, and assistant
// thinking / redacted_thinking blocks replayed from earlier turns (Chat
// Completions has no way to send reasoning back; the provider reasons anew).
//
// A final assistant message (Anthropic's prefill) is sent as an assistant
// message; Chat Completions providers answer after it rather than continue
// it, which is the closest they offer.
//
// Refused with 400 invalid_request_error naming the field: top_k (Chat
// Completions has no top-k sampling, and silently sampling differently from
// what the client asked is worse than saying so), server and hosted tools
// (web search, code execution, computer use, bash, text editor), documents
// other than base64 PDFs and plain text, search results, container,
// mcp_servers, context_management, and any other field this package does not
// know. Anthropic itself rejects unknown fields, so this matches what a
// client would see talking to Anthropic.
//
// # Response translation (Chat Completions → Anthropic Messages)
//
// The id becomes "msg_" plus the chat id without its "chatcmpl-" prefix.
// reasoning_content (or reasoning, as vLLM and Ollama name it) becomes a
// thinking block with an empty signature, before the text; content becomes a
// text block, refusal a text block with stop_reason "refusal"; tool_calls
// become tool_use blocks whose input is the parsed arguments. finish_reason
// stop → end_turn (Chat Completions does not say whether a stop sequence
// matched, so stop_sequence is always null), length → max_tokens,
// tool_calls → tool_use, content_filter → refusal. usage: input_tokens =
// prompt_tokens − cached_tokens, cache_read_input_tokens = cached_tokens,
// cache_creation_input_tokens = 0, output_tokens = completion_tokens.
package messages
