// Package eventstreamtest builds binary event streams from readable fixtures,
// for tests and fake providers.
package eventstreamtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tollgate-ai/tollgate/internal/eventstream"
)

// FromJSONL encodes one message per non-empty line of the form
// {"headers": {"name": "string value", ...}, "payload": <any JSON>} into an
// application/vnd.amazon.eventstream body. Headers are written in sorted
// order, the payload compactly as written.
func FromJSONL(lines []byte) ([]byte, error) {
	var out []byte
	for i, line := range bytes.Split(lines, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m struct {
			Headers map[string]string `json:"headers"`
			Payload json.RawMessage   `json:"payload"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		names := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		hs := make([][2]string, 0, len(names))
		for _, k := range names {
			hs = append(hs, [2]string{k, m.Headers[k]})
		}
		var payload bytes.Buffer
		if len(m.Payload) > 0 {
			if err := json.Compact(&payload, m.Payload); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		out = eventstream.Encode(out, hs, payload.Bytes())
	}
	return out, nil
}
