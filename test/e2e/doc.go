// Package e2e holds Tollgate's end-to-end tests: the official OpenAI Go SDK
// as the client, the Envoy stand-in (internal/devfront) driving a real gateway
// started through extproc/serve exactly as `tollgate serve` starts it, and
// fake providers (test/fakeprovider) speaking the providers' wire formats.
// When an `envoy` binary is on PATH the same cases also run through real
// Envoy; otherwise the suite says it skipped that part.
package e2e
