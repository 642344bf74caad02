package guardrails

import (
	"fmt"
	"strings"
	"testing"
)

// benchText is realistic prompt or completion text: prose, code-ish bits,
// numbers, and an occasional email, phone number or IP address.
func benchText(n int) string {
	parts := []string{
		"The quarterly report shows revenue grew by 12.5% to $4.2 million, driven by strong demand in Europe. ",
		"Please summarise the key points for the board meeting on 2024-03-15 and list open questions. ",
		"Contact jane.doe@example.com or call +44 20 7946 0958 if the numbers look wrong. ",
		"The service at 10.20.30.40 returned HTTP 503 for version 1.2.3 of the client; see ticket #48213. ",
		"func main() { fmt.Println(\"hello, world\") } // a tiny Go program for the onboarding guide. ",
		"Customers in Zürich, São Paulo and 東京 reported latency above 250 ms during the migration window. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return b.String()[:n]
}

// BenchmarkCheckInput: cost of the full input policy per KB of prompt.
func BenchmarkCheckInput(b *testing.B) {
	p := mustCompile(b, fullPolicy)
	for _, size := range []int{1 << 10, 16 << 10, 64 << 10} {
		text := benchText(size)
		in := Input{Pieces: []Piece{{Role: "system", Text: "You are a helpful assistant."}, {Role: "user", Text: text}}, MaxTokens: 1000}
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.NewRequest().CheckInput(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(size>>10), "ns/KB")
		})
	}
}

// BenchmarkStreamChunk: cost per streamed 20-byte delta with the full output
// policy (and restore) enabled.
func BenchmarkStreamChunk(b *testing.B) {
	p := mustCompile(b, fullPolicy)
	const chunkSize = 20
	text := benchText(64 << 10)
	chunks := chunk(text, chunkSize)
	r := p.NewRequest()
	if _, err := r.CheckInput(Input{Pieces: []Piece{{Role: "user", Text: "I am alice@example.com"}}}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	var s *Stream
	i := len(chunks)
	for b.Loop() {
		if i == len(chunks) {
			if s != nil {
				_, _ = s.Close()
			}
			s, i = r.NewStream(Content), 0
			r.decisions = r.decisions[:0]
		}
		if _, err := s.Write(chunks[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/chunk")
}

// BenchmarkAdversarial: hostile inputs cost about the same per byte at 16 KB
// and 128 KB, i.e. the detectors stay linear.
func BenchmarkAdversarial(b *testing.B) {
	p := mustCompile(b, fullPolicy)
	for _, pat := range []string{"@", "a@", "+1 ", "1 ", "1-", "1.", "a:", "[A_1", "sk-", "-----BEGIN ", "ignore all ", "Zm9v", "é"} {
		for _, size := range []int{16 << 10, 128 << 10} {
			text := strings.Repeat(pat, size/len(pat))
			b.Run(fmt.Sprintf("%q/%dKB", pat, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					r := p.NewRequest()
					_, _ = r.CheckInput(Input{Pieces: []Piece{{Role: "user", Text: text}}})
					_, _ = r.CheckOutput(Content, text)
				}
			})
		}
	}
}
