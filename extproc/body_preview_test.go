package extproc

import "testing"

// TestPreview: preview shows queued edits without applying them, so a
// reader between guardInput and spliceBody sees the redacted body while the
// queue stays intact for spliceBody.
func TestPreview(t *testing.T) {
	req := upstreamRequest{body: []byte(`{"a":"secret","b":1}`)}
	req.edit(5, 13, []byte(`"[REDACTED]"`))
	if got := string(req.preview()); got != `{"a":"[REDACTED]","b":1}` {
		t.Fatalf("preview %s", got)
	}
	if string(req.body) != `{"a":"secret","b":1}` || len(req.edits) != 1 {
		t.Fatalf("preview changed the request: %s, %d edits", req.body, len(req.edits))
	}
	if !req.applyEdits() || string(req.body) != `{"a":"[REDACTED]","b":1}` {
		t.Fatalf("applied %s", req.body)
	}
}
