package guardrails

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate-ai/tollgate/internal/detect"
)

// feed writes the chunks to a new stream of r and returns everything emitted
// (joined), the pieces emitted, and the error that ended it.
func feed(t testing.TB, r *Request, kind StreamKind, chunks []string) (string, []string, error) {
	t.Helper()
	s := r.NewStream(kind)
	var pieces []string
	for _, c := range chunks {
		out, err := s.Write(c)
		pieces = append(pieces, out)
		if !s.passthrough && !s.holdAll && len(s.buf)-s.pos > s.window {
			t.Fatalf("holding back %d bytes, window %d", len(s.buf)-s.pos, s.window)
		}
		if err != nil {
			return strings.Join(pieces, ""), pieces, err
		}
	}
	out, err := s.Close()
	pieces = append(pieces, out)
	return strings.Join(pieces, ""), pieces, err
}

// requestWith runs CheckInput with the given user text so that its values are
// in the vault.
func requestWith(t testing.TB, p *Policy, prompt string) *Request {
	t.Helper()
	r := p.NewRequest()
	if _, err := r.CheckInput(Input{Pieces: []Piece{{Role: "user", Text: prompt}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStreamRedactsAcrossChunks(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	r := requestWith(t, p, "hello")
	got, pieces, err := feed(t, r, Content, []string{"Contact bob@", "exam", "ple.com or +44 20 ", "7946 0958 now."})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Contact [EMAIL_1] or [PHONE_1] now."; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, pc := range pieces {
		if strings.Contains(pc, "bob") || strings.Contains(pc, "7946") {
			t.Errorf("piece %q leaks", pc)
		}
	}
	if d := r.Decisions(); len(d) != 1 || d[0] != (Decision{Guardrail: "out-pii", Stage: StageOutput, Action: Redact, Count: 2}) {
		t.Errorf("decisions %+v", d)
	}
}

func TestStreamHoldsBackAtMostWindow(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	r := requestWith(t, p, "hello")
	s := r.NewStream(Content)
	text := strings.Repeat("lorem ipsum dolor sit amet ", 100)
	emitted := 0
	for i := 0; i < len(text); i += 20 {
		out, err := s.Write(text[i:min(i+20, len(text))])
		if err != nil {
			t.Fatal(err)
		}
		emitted += len(out)
		if held := min(i+20, len(text)) - emitted; held > p.window || held < 0 {
			t.Fatalf("after %d bytes: holding %d, window %d", i+20, held, p.window)
		}
	}
	out, _ := s.Close()
	if emitted+len(out) != len(text) {
		t.Fatalf("emitted %d of %d bytes", emitted+len(out), len(text))
	}
}

func TestStreamBlocksMidStream(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	r := requestWith(t, p, "hello")
	key := fakeAWS
	s := r.NewStream(Content)
	var got strings.Builder
	chunks := []string{strings.Repeat("safe text. ", 30), "here is the key: " + key[:6], key[6:] + " and more text", strings.Repeat(" tail", 100)}
	var err error
	for _, c := range chunks {
		var out string
		out, err = s.Write(c)
		got.WriteString(out)
		if err != nil {
			break
		}
	}
	var b *Blocked
	if !errors.As(err, &b) || b.Guardrail != "out-secrets" || b.Stage != StageOutput {
		t.Fatalf("err = %v", err)
	}
	if want := strings.Repeat("safe text. ", 30) + "here is the key: "; got.String() != want {
		t.Fatalf("emitted %q, want the text before the key", got.String())
	}
	if b.Message() != `Response blocked by guardrail "out-secrets".` {
		t.Errorf("Message = %q", b.Message())
	}
	if out, err2 := s.Write("more"); out != "" || err2 != err {
		t.Errorf("Write after block = %q, %v", out, err2)
	}
	if out, err2 := s.Close(); out != "" || err2 != err {
		t.Errorf("Close after block = %q, %v", out, err2)
	}
	want := Decision{Guardrail: "out-secrets", Stage: StageOutput, Action: Block, Count: 1}
	if !slices.Contains(r.Decisions(), want) {
		t.Errorf("decisions %+v lack %+v", r.Decisions(), want)
	}
}

func TestStreamRestores(t *testing.T) {
	p := mustCompile(t, `{"name":"p","input":[{"name":"pii","type":"pii","action":"redact","restore_redacted":true},
		{"name":"cards","type":"pii","entities":["card"],"action":"redact"}],
		"output":[{"name":"out","type":"pii","action":"redact","entities":["email"]}]}`)
	r := p.NewRequest()
	edits, err := r.CheckInput(Input{Pieces: []Piece{{Role: "user", Text: "I am alice@example.com, card 4111111111111111"}}})
	if err != nil || len(edits) != 1 || edits[0].Text != "I am [EMAIL_1], card [CARD_1]" {
		t.Fatalf("CheckInput = %+v, %v", edits, err)
	}
	// The card was matched by "pii" (restore) and "cards" (no restore): it stays redacted.
	got, _, err := feed(t, r, Content, []string{"Hello [EMA", "IL_1]! Your card [CARD_1] and bob@", "example.org; [EMAIL_2] [EMAIL_1"})
	if err != nil {
		t.Fatal(err)
	}
	// bob@example.org becomes [EMAIL_2] (output redaction); the model's own
	// "[EMAIL_2]" is not restored: only input placeholders are.
	if want := "Hello alice@example.com! Your card [CARD_1] and [EMAIL_2]; [EMAIL_2] [EMAIL_1"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestStreamRestoreOnlyPolicyIsActive(t *testing.T) {
	p := mustCompile(t, `{"name":"p","input":[{"name":"pii","type":"pii","action":"redact","restore_redacted":true}]}`)
	r := requestWith(t, p, "nothing here")
	if r.OutputActive() {
		t.Error("OutputActive with nothing to restore")
	}
	if got, _, _ := feed(t, r, Content, []string{"[EMAIL_1]"}); got != "[EMAIL_1]" {
		t.Errorf("passthrough = %q", got)
	}
	r = requestWith(t, p, "me: a@b.co")
	if !r.OutputActive() {
		t.Error("OutputActive = false with a placeholder to restore")
	}
	if got, err := r.CheckOutput(Content, "hi [EMAIL_1]"); err != nil || got != "hi a@b.co" {
		t.Errorf("CheckOutput = %q, %v", got, err)
	}
}

func TestStreamPrivateKeyLongerThanWindow(t *testing.T) {
	p := mustCompile(t, `{"name":"p","output_window_bytes":128,"output":[{"name":"keys","type":"secrets","action":"redact","entities":["private_key"]}]}`)
	body := strings.Repeat("MIIEowIBAAKCAQEAx0AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcdefghij\n", 20)
	block := "-----BEGIN RSA " + "PRIVATE KEY-----\n" + body + "-----END RSA " + "PRIVATE KEY-----"
	text := "Here: " + block + "\nDone."
	want := "Here: [PRIVATE_KEY_1]\nDone."
	for _, size := range []int{1, 7, 64, 1000, len(text)} {
		r := requestWith(t, p, "x")
		got, _, err := feed(t, r, Content, chunk(text, size))
		if err != nil || got != want {
			t.Fatalf("chunk %d: got %q, %v", size, got, err)
		}
	}
	// Without an END line, everything after BEGIN is suppressed.
	r := requestWith(t, p, "x")
	if got, _, _ := feed(t, r, Content, chunk("k: -----BEGIN "+"PRIVATE KEY-----\n"+body, 13)); got != "k: [PRIVATE_KEY_1]" {
		t.Fatalf("unterminated: %q", got)
	}
}

func TestStreamFlagsCountOnce(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	text := strings.Repeat("this is Confidential. ", 40)
	for _, size := range []int{1, 5, 300, len(text)} {
		r := requestWith(t, p, "x")
		got, _, err := feed(t, r, Content, chunk(text, size))
		if err != nil || got != text {
			t.Fatalf("flag changed the text: %q, %v", got, err)
		}
		if d := r.Decisions(); len(d) != 1 || d[0] != (Decision{Guardrail: "out-terms", Stage: StageOutput, Action: Flag, Count: 40}) {
			t.Fatalf("chunk %d: decisions %+v", size, d)
		}
	}
}

func TestStreamUTF8(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	text := strings.Repeat("héllo wörld 😀 日本語テキスト — ", 30) + "mail ünï@exämple.de"
	r := requestWith(t, p, "x")
	got, pieces, err := feed(t, r, Content, chunk(text, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range pieces {
		if !utf8.ValidString(pc) {
			t.Fatalf("emitted piece %q splits a rune", pc)
		}
	}
	if want := strings.Repeat("héllo wörld 😀 日本語テキスト — ", 30) + "mail [EMAIL_1]"; got != want {
		t.Fatalf("got %q", got)
	}
}

func TestStreamToolArguments(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	r := requestWith(t, p, "x")
	got, _, err := feed(t, r, ToolArguments, []string{`{"to":"a`, `lice@exa`, `mple.com","body":"hi"}`})
	if err != nil || got != `{"to":"[EMAIL_1]","body":"hi"}` {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestStreamGrounding(t *testing.T) {
	ctx := []string{"The Eiffel Tower is 330 metres tall and stands in Paris. It was completed in 1889."}
	grounded := "The Eiffel Tower stands in Paris. It is 330 metres tall."
	ungrounded := "The Eiffel Tower is in Rome. It was painted green by Napoleon in 1999."
	for _, action := range []Action{Flag, Block} {
		p := mustCompile(t, `{"name":"p","grounding":{"threshold":0.75,"action":"`+string(action)+`"}}`)
		for _, c := range []struct {
			text string
			ok   bool
		}{{grounded, true}, {ungrounded, false}} {
			r := p.NewRequest()
			if _, err := r.CheckInput(Input{GroundingContext: ctx}); err != nil {
				t.Fatal(err)
			}
			got, pieces, err := feed(t, r, Content, chunk(c.text, 7))
			switch {
			case c.ok && (err != nil || got != c.text || len(r.Decisions()) != 0):
				t.Errorf("%s grounded: %q, %v, %+v", action, got, err, r.Decisions())
			case !c.ok && action == Flag && (err != nil || got != c.text):
				t.Errorf("flag ungrounded: %q, %v", got, err)
			case !c.ok && action == Block && (err == nil || got != ""):
				t.Errorf("block ungrounded: %q, %v", got, err)
			}
			if action == Block {
				for _, pc := range pieces[:len(pieces)-1] {
					if pc != "" {
						t.Errorf("grounding block emitted %q before Close", pc)
					}
				}
			}
			if !c.ok {
				d := r.Decisions()
				// "The Eiffel Tower is in Rome." has 2 of 3 content words in the context: supported.
				if len(d) != 1 || d[0].Guardrail != "grounding" || d[0].Action != action || d[0].Count != 1 || d[0].Score != 0.5 {
					t.Errorf("%s decisions %+v", action, d)
				}
			}
		}
		// Tool-call arguments are not scored.
		r := p.NewRequest()
		_, _ = r.CheckInput(Input{GroundingContext: ctx})
		if got, err := r.CheckOutput(ToolArguments, ungrounded); err != nil || got != ungrounded {
			t.Errorf("tool arguments: %q, %v", got, err)
		}
	}
}

func TestStreamClosed(t *testing.T) {
	p := mustCompile(t, fullPolicy)
	s := requestWith(t, p, "x").NewStream(Content)
	if _, err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("x"); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

// With short, well-separated matches, the stream gives exactly what
// whole-text redaction gives.
func TestStreamMatchesWholeText(t *testing.T) {
	p := mustCompile(t, `{"name":"p","output":[{"name":"pii","type":"pii","action":"redact"},{"name":"s","type":"secrets","action":"redact"}]}`)
	words := []string{"alpha", "beta", "gamma", "a@b.co", "+1 415 555 2671", "4111 1111 1111 1111", "192.168.0.1", "DE89370400440532013000",
		"123-45-6789", "2001:db8::1", fakeAWS, "zeta.", "Ünïcode", "x@y.org", "10.0.0.1"}
	var b strings.Builder
	seed := uint32(7)
	for b.Len() < 5000 {
		seed = seed*1664525 + 1013904223
		b.WriteString(words[seed>>16%uint32(len(words))])
		b.WriteString(" ")
	}
	text := b.String()
	// Reference: every detector over the whole text, then the same resolution.
	var want strings.Builder
	var v Vault
	spans := detect.Find(nil, text, detect.PII|detect.Secrets)
	ms := make([]match, 0, len(spans))
	for _, sp := range spans {
		ms = append(ms, match{start: sp.Start, end: sp.End, label: sp.Kind.Label()})
	}
	pos := 0
	for _, m := range resolve(ms) {
		want.WriteString(text[pos:m.start])
		want.WriteString(v.placeholder(m.label, text[m.start:m.end], false, false))
		pos = m.end
	}
	want.WriteString(text[pos:])
	for _, size := range []int{1, 3, 20, 129, 5000} {
		got, _, err := feed(t, requestWith(t, p, "x"), Content, chunk(text, size))
		if err != nil || got != want.String() {
			t.Fatalf("chunk %d:\n got %q\nwant %q", size, got, want.String())
		}
	}
}

func chunk(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestCutPoint(t *testing.T) {
	b := []byte("a€b😀") // a, E2 82 AC, b, F0 9F 98 80
	for x, want := range map[int]int{0: 0, 1: 1, 2: 1, 3: 1, 4: 4, 5: 5, 6: 5, 7: 5, 8: 5, 9: 9} {
		if got := cutPoint(b, x); got != want {
			t.Errorf("cutPoint(%d) = %d, want %d", x, got, want)
		}
	}
	if got := cutPoint([]byte{0x80, 0x80, 0x80, 0x80}, 4); got != 4 {
		t.Errorf("continuation bytes: %d", got)
	}
}

// Grounding is scored per choice; the decision counts every unsupported
// sentence and keeps the lowest score.
func TestGroundingDecisionPerChoice(t *testing.T) {
	p := mustCompile(t, `{"name":"p","grounding":{"threshold":0.9,"action":"flag"}}`)
	r := p.NewRequest()
	if _, err := r.CheckInput(Input{GroundingContext: []string{"Paris is the capital of France."}}); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Paris is the capital of France. Lyon is bigger.", "Berlin has many museums."} {
		if _, err := r.CheckOutput(Content, text); err != nil {
			t.Fatal(err)
		}
	}
	want := []Decision{{Guardrail: "grounding", Stage: StageOutput, Action: Flag, Count: 2, Score: 0}}
	if !slices.Equal(r.Decisions(), want) {
		t.Errorf("decisions %+v, want %+v", r.Decisions(), want)
	}
}
