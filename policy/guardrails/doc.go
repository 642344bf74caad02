// Package guardrails applies per-app policies to chat completion requests and
// their answers: input guardrails on the prompt, output guardrails on the
// completion while it streams, and grounding of the answer in context the
// client supplies. See docs/guardrails.md for the configuration and what
// clients see.
//
// Use:
//
//   - Config is compiled once per configuration load with NewSet. The
//     gateway builds it from the configuration's guardrails section, which
//     package config validates (with file and line); NewSet refuses only
//     what it cannot compile. A Policy is immutable and shared by every
//     request.
//   - Per request, Policy.NewRequest starts the state: CheckInput takes the
//     prompt's text pieces and returns the redaction edits or a *Blocked
//     error; NewStream (one per choice's content and per tool call's
//     arguments) redacts, restores or blocks the completion delta by delta,
//     holding back at most the policy's window; CheckOutput does the same for
//     a whole non-streaming text.
//   - Decisions lists what every guardrail did (name, stage, action, count,
//     score), never the content, for logs and metrics.
//
// Detectors live in package internal/detect and the grounding score in
// package grounding (under internal/).
package guardrails
