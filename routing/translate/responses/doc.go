// Package responses translates OpenAI's Responses API (POST /v1/responses)
// to and from the Chat Completions API, for providers that speak only chat
// completions: the gateway turns a Responses request into a chat request
// (TranslateRequest), hands that to its chat translators like any other, and
// turns the chat answer back into a response object (Request.Response) or
// a Responses event stream (Request.NewStream).
//
// It lives beside the provider translators because it is one: pure, with no
// connections or package state, the same *oaierror.Error refusals, and the
// same internal wire helpers. It is not a translate.Schema, though: it
// converts a client API into chat, where a Schema converts chat into a
// provider API, and the two chain.
//
// Stateful and hosted Responses features (previous_response_id, store,
// conversation, built-in tools, background, include) exist only on OpenAI's
// own API. When the target is OpenAI the gateway forwards the request
// natively and uses the read-only helpers here instead (InputTexts,
// ApplyEdits, OutputTexts, EventUsage, usage.FromResponses); elsewhere
// TranslateRequest refuses them with a 400 unsupported_parameter naming the
// field (see Unsupported).
package responses
