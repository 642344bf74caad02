package pricing

import (
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/yamldoc"
)

const fixture = "../../test/testdata/fixtures/pricing.yaml"

func mustParse(t testing.TB, name string, data []byte) Table {
	t.Helper()
	tab, err := Parse(name, data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tab
}

func mustNew(t testing.TB, yaml string) *Prices {
	t.Helper()
	p, err := New(mustParse(t, "test.yaml", []byte(yaml)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

var now = date("2026-11-21T12:00:00Z")

// TestFixtureModels prices the same usage for every entry of the shared
// fixture; expected totals were computed by hand in decimal.
func TestFixtureModels(t *testing.T) {
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	prices, err := New(mustParse(t, fixture, data))
	if err != nil {
		t.Fatal(err)
	}
	chat := Usage{PromptTokens: 1_234_567, CachedTokens: 34_567, CompletionTokens: 89_012}
	embed := Usage{PromptTokens: 1_234_567, CachedTokens: 34_567}
	audio := Usage{PromptTokens: 1_234_567, AudioTokens: 1_200_000, CompletionTokens: 89_012}
	tests := map[string]struct { // fixture entry name → case
		model string
		u     Usage
		want  string
	}{
		"claude-sonnet-4-5":      {"claude-sonnet-4-5", chat, "4.9455501"},
		"claude-haiku-4-5":       {"claude-haiku-4-5", chat, "1.6485167"},
		"claude-opus-4-1":        {"claude-opus-4-1", chat, "24.7277505"},
		"text-embedding-3-large": {"text-embedding-3-large", embed, "0.16049371"},
		"text-embedding-3-small": {"text-embedding-3-small", embed, "0.02469134"},
		"gpt-4o":                 {"gpt-4o", chat, "3.93332875"},
		"gpt-4o-mini":            {"gpt-4o-mini", chat, "0.235999725"},
		"gpt-4.1":                {"gpt-4.1", chat, "3.1293795"},
		"gpt-4.1-mini":           {"gpt-4.1-mini", chat, "0.6258759"},
		"o4-mini":                {"o4-mini", chat, "1.721158725"},
		// No cached_input rate: cache hits are billed as input.
		"gemini-2.5-pro":      {"gemini-2.5-pro", Usage{PromptTokens: 200_000, CachedTokens: 34_567, CompletionTokens: 89_012}, "1.14012"},
		"gemini-2.5-pro-long": {"gemini-2.5-pro", chat, "4.4215975"}, // prompt over 200k: the long tier
		"gemini-2.5-flash":    {"gemini-2.5-flash", chat, "0.5929001"},
		// Audio: 90.5 s at 0.006 $/min; audio tokens at their own rate.
		"whisper-1":              {"whisper-1", Usage{AudioMillis: 90_500}, "0.00905"},
		"gpt-4o-transcribe":      {"gpt-4o-transcribe", audio, "8.1765375"},
		"gpt-4o-mini-transcribe": {"gpt-4o-mini-transcribe", audio, "4.08826875"},
		// Cloud-hosted ids at the vendors' list prices.
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0": {"us.anthropic.claude-sonnet-4-5-20250929-v1:0", chat, "4.9455501"},
		"anthropic.claude-sonnet-4-5-20250929-v1:0":    {"anthropic.claude-sonnet-4-5-20250929-v1:0", chat, "4.9455501"},
		"claude-sonnet-4-5@20250929":                   {"claude-sonnet-4-5@20250929", chat, "4.9455501"},
		"google/gemini-2.5-flash":                      {"google/gemini-2.5-flash", chat, "0.5929001"},
	}
	tab := mustParse(t, fixture, data)
	for name := range tab.Models {
		if _, ok := tests[name]; !ok {
			t.Errorf("fixture entry %q has no test case", name)
		}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, ok := prices.Cost(dk(tt.model), tt.u, now)
			if !ok {
				t.Fatalf("Cost(%q) not priced", tt.model)
			}
			if got := c.Total.String(); got != tt.want {
				t.Errorf("total = %s USD, want %s", got, tt.want)
			}
			if c.Input+c.CachedInput+c.CacheWrite+c.Audio+c.Output != c.Total {
				t.Errorf("parts %+v do not add up to the total", c)
			}
		})
	}
	if _, ok := prices.Cost(Key{"gemini", "gemini-2.5-pro-long"}, chat, now); ok {
		t.Error("an entry name with a model field must not be a model id")
	}
}

func TestDefaultIsFixture(t *testing.T) {
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	got, want := DefaultTable(), mustParse(t, fixture, data)
	// Besides the fixture's list prices, the built-in mock provider is free.
	for _, name := range []string{"tollgate-mock", "tollgate-mock-embed"} {
		e, ok := got.Models[name]
		if !ok || e.Provider != "mock" || e.Input == nil || *e.Input != 0 || (e.Output != nil && *e.Output != 0) {
			t.Errorf("mock price %s = %+v", name, e)
		}
		delete(got.Models, name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default.yaml differs from the fixture:\n got %+v\nwant %+v", got, want)
	}
	// Source comments are kept.
	if !strings.Contains(string(defaultYAML), "https://platform.claude.com/docs/en/docs/about-claude/pricing") {
		t.Error("default.yaml lost the source comments")
	}
	a, b := DefaultTable(), DefaultTable()
	delete(a.Models, "gpt-4o")
	if _, ok := b.Models["gpt-4o"]; !ok {
		t.Error("DefaultTable copies share state")
	}
	if _, ok := Default().Cost(Key{"openai", "gpt-4o"}, Usage{PromptTokens: 1}, now); !ok {
		t.Error("Default does not price gpt-4o")
	}
}

func TestAnthropicCacheWrites(t *testing.T) {
	u := Usage{PromptTokens: 1_000_000, CachedTokens: 100_000, CacheWrite5mTokens: 200_000, CacheWrite1hTokens: 50_000, CompletionTokens: 1000}
	tests := []struct {
		model                               string
		input, cached, write, output, total string
	}{
		{"claude-sonnet-4-5", "1.95", "0.03", "1.05", "0.015", "3.045"},
		{"claude-haiku-4-5", "0.65", "0.01", "0.35", "0.005", "1.015"},
		{"claude-opus-4-1", "9.75", "0.15", "5.25", "0.075", "15.225"},
	}
	p := Default()
	for _, tt := range tests {
		c, ok := p.Cost(dk(tt.model), u, now)
		if !ok {
			t.Fatalf("%s not priced", tt.model)
		}
		got := []string{c.Input.String(), c.CachedInput.String(), c.CacheWrite.String(), c.Output.String(), c.Total.String()}
		want := []string{tt.input, tt.cached, tt.write, tt.output, tt.total}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: input, cached, write, output, total = %v, want %v", tt.model, got, want)
		}
	}
	// Without cache-write rates, writes are billed as input.
	q := mustNew(t, "models: {m: {provider: x, input: 2, output: 1}}")
	c, _ := q.Cost(Key{"x", "m"}, Usage{PromptTokens: 10, CacheWrite5mTokens: 3, CacheWrite1hTokens: 2}, now)
	if c.CacheWrite != 5*2*MicroUSD || c.Input != 5*2*MicroUSD {
		t.Errorf("fallback: %+v", c)
	}
}

func TestCostEdges(t *testing.T) {
	p := mustNew(t, `
models:
  chat: {provider: x, input: 0.30, cached_input: 0.03, output: 1}
  embed: {provider: x, input: 0.02}
  future: {provider: x, input: 1, output: 1, effective_from: "2030-01-01"}
`)
	tests := []struct {
		name  string
		model string
		u     Usage
		want  Amount
		ok    bool
	}{
		{"one token at 0.30/MTok is 0.3 µ$", "chat", Usage{PromptTokens: 1}, 300_000 * PicoUSD, true},
		{"zero usage", "chat", Usage{}, 0, true},
		{"cached beyond prompt clamps uncached to 0", "chat", Usage{PromptTokens: 5, CachedTokens: 10}, 10 * 30_000, true},
		{"unknown model", "nope", Usage{PromptTokens: 1}, 0, false},
		{"negative count", "chat", Usage{PromptTokens: -1}, 0, false},
		{"output on a model without output price", "embed", Usage{PromptTokens: 1, CompletionTokens: 1}, 0, false},
		{"embedding without output", "embed", Usage{PromptTokens: 1_000_000}, 20_000 * MicroUSD, true},
		{"not yet effective", "future", Usage{PromptTokens: 1}, 0, false},
		{"saturates instead of wrapping", "chat", Usage{PromptTokens: 1 << 53, CompletionTokens: 1 << 53}, MaxAmount, true},
	}
	for _, tt := range tests {
		c, ok := p.Cost(Key{"x", tt.model}, tt.u, now)
		if ok != tt.ok || c.Total != tt.want {
			t.Errorf("%s: got %v (%v), want %v (%v)", tt.name, c.Total, ok, tt.want, tt.ok)
		}
	}
}

func TestEffectiveFrom(t *testing.T) {
	p := mustNew(t, `
models:
  m:      {provider: x, input: 1, output: 1}
  m-long: {provider: x, model: m, min_prompt_tokens: 100, input: 5, output: 5}
  m-2026: {provider: x, model: m, effective_from: 2026-03-01, input: 2, output: 2}
  m-2027: {provider: x, model: m, effective_from: "2027-01-01T00:00:00+01:00", input: 3, output: 3}
`)
	u := func(prompt int64) Usage { return Usage{PromptTokens: prompt} }
	tests := []struct {
		at     string
		prompt int64
		want   Amount // per prompt token
	}{
		{"2026-02-28T23:59:59.999999999Z", 1, 1 * MicroUSD},
		{"2026-02-28T23:59:59.999999999Z", 100, 5 * MicroUSD}, // the long tier
		{"2026-03-01T00:00:00Z", 1, 2 * MicroUSD},
		{"2026-03-01T00:00:00Z", 100, 2 * MicroUSD}, // a change replaces every tier
		{"2026-12-31T22:59:59Z", 1, 2 * MicroUSD},
		{"2026-12-31T23:00:00Z", 1, 3 * MicroUSD}, // offsets count
		{"2099-01-01T00:00:00Z", 1, 3 * MicroUSD},
	}
	for _, tt := range tests {
		c, ok := p.Cost(Key{"x", "m"}, u(tt.prompt), date(tt.at))
		if !ok || c.Total != tt.want*Amount(tt.prompt) {
			t.Errorf("at %s, %d tokens: got %v (%v), want %v per token", tt.at, tt.prompt, c.Total, ok, tt.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	p := Default()
	tests := []struct {
		model          string
		prompt, output int64
		want           string
		ok             bool
	}{
		{"claude-sonnet-4-5", 1000, 500, "0.0135", true}, // prompt at the 1-hour cache-write rate, 6 $/MTok
		{"gpt-4o", 1000, 500, "0.0075", true},            // input is the highest input-side rate
		{"gemini-2.5-pro", 300_000, 0, "0.75", true},     // the long tier from the prompt size
		{"text-embedding-3-small", 1_000_000, 0, "0.02", true},
		{"text-embedding-3-small", 1, 1, "0", false},
		{"unknown", 1, 1, "0", false},
		{"gpt-4o", -1, 1, "0", false},
	}
	for _, tt := range tests {
		got, ok := p.Estimate(dk(tt.model), tt.prompt, tt.output, now)
		if ok != tt.ok || got.String() != tt.want {
			t.Errorf("Estimate(%s, %d, %d) = %s, %v; want %s, %v", tt.model, tt.prompt, tt.output, got, ok, tt.want, tt.ok)
		}
		if !ok {
			continue
		}
		// The estimate bounds the real cost of any usage within it.
		for _, u := range []Usage{
			{PromptTokens: tt.prompt, CompletionTokens: tt.output},
			{PromptTokens: tt.prompt, CachedTokens: tt.prompt / 2, CompletionTokens: tt.output},
			{PromptTokens: tt.prompt, CacheWrite1hTokens: tt.prompt / 3, CacheWrite5mTokens: tt.prompt / 3, CompletionTokens: tt.output},
		} {
			if c, _ := p.Cost(dk(tt.model), u, now); c.Total > got {
				t.Errorf("%s: cost %s of %+v exceeds the estimate %s", tt.model, c.Total, u, got)
			}
		}
	}
}

// TestNoDrift adds the costs of a million requests and compares the sum with
// the exact rational result computed from the decimal price text.
func TestNoDrift(t *testing.T) {
	p := Default()
	const n = 1_000_000
	var sum Amount
	var tokens, cached, output int64
	var floatSum float64
	for i := range int64(n) {
		u := Usage{PromptTokens: 1 + i%997, CachedTokens: min(i%13, 1+i%997), CompletionTokens: i % 101}
		c, ok := p.Cost(Key{"openai", "gpt-4o-mini"}, u, now)
		if !ok {
			t.Fatal("not priced")
		}
		sum += c.Total
		tokens += u.PromptTokens - u.CachedTokens
		cached += u.CachedTokens
		output += u.CompletionTokens
		floatSum += float64(u.PromptTokens-u.CachedTokens)*0.15e-6 + float64(u.CachedTokens)*0.075e-6 + float64(u.CompletionTokens)*0.60e-6
	}
	rat := func(s string) *big.Rat {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatal(s)
		}
		return r
	}
	want := new(big.Rat)
	for _, part := range []struct {
		price  string
		tokens int64
	}{{"0.15", tokens}, {"0.075", cached}, {"0.60", output}} {
		want.Add(want, new(big.Rat).Mul(rat(part.price), new(big.Rat).SetInt64(part.tokens)))
	}
	want.Quo(want, rat("1000000"))
	got := new(big.Rat).SetFrac(big.NewInt(int64(sum)), big.NewInt(int64(USD)))
	if got.Cmp(want) != 0 {
		t.Fatalf("sum of %d costs = %s USD, exact = %s", n, got.FloatString(12), want.FloatString(12))
	}
	t.Logf("exact sum %s USD; a float64 sum gives %.12f", sum, floatSum)
}

func TestParseRateAndUSD(t *testing.T) {
	rates := []struct {
		in   string
		want Rate
		err  string
	}{
		{"3", 3_000_000, ""},
		{"3.00", 3_000_000, ""},
		{"0.30", 300_000, ""},
		{"0.075", 75_000, ""},
		{"0.01875", 18_750, ""},
		{"0.000001", 1, ""},
		{"0.0000010000", 1, ""},
		{".5", 500_000, ""},
		{"5.", 5_000_000, ""},
		{"007", 7_000_000, ""},
		{"1000000", MaxRate, ""},
		{"1000000.000001", 0, "too large"},
		{"0.0000001", 0, "more than 6 decimal places"},
		{"-1", 0, "must not be negative"},
		{"+1", 0, "not a plain decimal"},
		{"1e-3", 0, "not a plain decimal"},
		{"1_000", 0, "not a plain decimal"},
		{".", 0, "not a plain decimal"},
		{"", 0, "not a plain decimal"},
		{"1.2.3", 0, "not a plain decimal"},
		{".inf", 0, "not a plain decimal"},
		{" 1", 0, "not a plain decimal"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range rates {
		got, err := ParseRate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRate(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	amounts := []struct {
		in, out string
		want    Amount
	}{
		{"0", "0", 0},
		{"12", "12", 12 * USD},
		{"0.000000000001", "0.000000000001", PicoUSD},
		{"9223372.036854775807", "9223372.036854775807", MaxAmount},
		{"100.50", "100.5", 100*USD + USD/2},
	}
	for _, tt := range amounts {
		got, err := ParseUSD(tt.in)
		if err != nil || got != tt.want || got.String() != tt.out {
			t.Errorf("ParseUSD(%q) = %v (%s), %v; want %v", tt.in, int64(got), got, err, int64(tt.want))
		}
	}
	if _, err := ParseUSD("9223372.036854775808"); err == nil {
		t.Error("ParseUSD accepted an amount beyond int64")
	}
	if s := Amount(-1500 * MicroUSD).String(); s != "-0.0015" {
		t.Errorf("negative amount formats as %q", s)
	}
}

func TestRateJSON(t *testing.T) {
	var r Rate
	for _, in := range []string{`0.075`, `"0.075"`} {
		if err := r.UnmarshalJSON([]byte(in)); err != nil || r != 75_000 {
			t.Errorf("UnmarshalJSON(%s) = %v, %v", in, r, err)
		}
	}
	if b, _ := r.MarshalJSON(); string(b) != "0.075" {
		t.Errorf("MarshalJSON = %s", b)
	}
	if err := r.UnmarshalJSON([]byte(`7.5e-2`)); err == nil {
		t.Error("an exponent was accepted")
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every problem, in order
	}{
		{"empty document", "", nil},
		{"unknown top-level field", "model: {}\n", []string{`t.yaml:1: unknown field "model"`}},
		{"unknown entry field", "models:\n  a:\n    provider: x\n    input: 1\n    outptu: 2\n", []string{`t.yaml:5: models[a]: unknown field "outptu"`}},
		{"missing fields", "models:\n  a: {}\n", []string{`t.yaml:2: models[a].provider: required`, `t.yaml:2: models[a].input: required (or per_minute, for a model billed by audio duration)`}},
		{"null entry", "models:\n  a:\n", []string{`t.yaml:2: models[a].provider: required`, `t.yaml:2: models[a].input: required (or per_minute, for a model billed by audio duration)`}},
		{"float price with too many decimals", "models:\n  a: {provider: x, input: 0.0000001}\n", []string{`t.yaml:2: models[a].input: price "0.0000001": more than 6 decimal places`}},
		{"negative price", "models:\n  a: {provider: x, input: -1}\n", []string{`t.yaml:2: models[a].input: price "-1": must not be negative`}},
		{"price of the wrong type", "models:\n  a:\n    provider: x\n    input: [1]\n", []string{`t.yaml:4: models[a].input: expected a price in USD per million tokens, got a list`}},
		{"provider not a string", "models:\n  a: {provider: 1, input: 1}\n", []string{`t.yaml:2: models[a].provider: expected a string, got the number 1`}},
		{"bad effective_from", "models:\n  a: {provider: x, input: 1, effective_from: 'March 1'}\n", []string{`t.yaml:2: models[a].effective_from: "March 1" is not an RFC 3339 date-time (2026-03-01T00:00:00Z) or date (2026-03-01)`}},
		{"fractional min_prompt_tokens", "models:\n  a: {provider: x, input: 1, min_prompt_tokens: 1.5}\n", []string{`t.yaml:2: models[a].min_prompt_tokens: expected a whole number of tokens, got the number 1.5`}},
		{"repeated key", "models:\n  a: {provider: x, input: 1, input: 2}\n", []string{`t.yaml:2: models[a]: key "input" given more than once`}},
		{"merge key", "base: &b {provider: x}\nmodels:\n  a: {<<: *b, input: 1}\n", []string{`t.yaml:1: unknown field "base"`, `t.yaml:3: models[a]: YAML merge keys (<<) are not supported`, `t.yaml:3: models[a].provider: required`}},
		{"no base tier", "models:\n  a-long: {provider: x, model: a, min_prompt_tokens: 10, input: 1}\n", []string{`t.yaml:2: models[a-long].min_prompt_tokens: model "a" of provider "x" with no effective_from has no tier for prompts from 0 tokens (an entry without min_prompt_tokens)`}},
		{"duplicate tier", "models:\n  a: {provider: x, input: 1}\n  b: {provider: x, model: a, input: 2}\n", []string{`t.yaml:3: models[b]: duplicates entry "a": same provider "x", model "a", effective_from and min_prompt_tokens`}},
		{"same instant, different spelling", "models:\n  a: {provider: x, input: 1, effective_from: 2026-01-01}\n  b: {provider: x, model: a, input: 2, effective_from: '2026-01-01T01:00:00+01:00'}\n", []string{`t.yaml:3: models[b]: duplicates entry "a": same provider "x", model "a", effective_from and min_prompt_tokens`}},
		{"provider with a slash", "models:\n  a: {provider: x/y, input: 1}\n", []string{`t.yaml:2: models[a].provider: must name a gateway provider: no "/", whitespace or control characters`}},
		{"neither input nor per_minute", "models:\n  a: {provider: x, output: 1}\n", []string{`t.yaml:2: models[a].input: required (or per_minute, for a model billed by audio duration)`}},
		{"per_minute with too many decimals", "models:\n  a: {provider: x, input: 1, per_minute: 0.0000000000001}\n", []string{`t.yaml:2: models[a].per_minute: USD amount "0.0000000000001": more than 12 decimal places`}},
		{"two documents", "models: {}\n---\nmodels: {}\n", []string{`t.yaml:2: only one YAML document per file is supported`}},
		{"syntax error", "models: [\n", []string{`t.yaml:1: did not find expected node content`}},
		{"models not a mapping", "models: [a]\n", []string{`t.yaml:1: models: expected a mapping, got a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			var got []string
			if err != nil {
				ps, ok := err.(yamldoc.Problems)
				if !ok {
					t.Fatalf("error %T is not Problems", err)
				}
				for _, p := range ps {
					got = append(got, p.String())
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidateGoTable(t *testing.T) {
	r := func(v Rate) *Rate { return &v }
	tab := Table{Models: map[string]Entry{
		"ok":   {Provider: "x", Input: r(1)},
		"neg":  {Provider: "x", Input: r(-1), MinPromptTokens: -1},
		"big":  {Provider: "x", Input: r(1), Output: r(MaxRate + 1)},
		" ":    {Provider: "x", Input: r(1)},
		"tabs": {Provider: "x", Model: "a\tb", Input: r(1)},
	}}
	var got []string
	for _, p := range tab.Validate() {
		got = append(got, p.String())
	}
	want := []string{
		"models[ ]: entry name must not be empty",
		"models[ ].model: must not contain whitespace at either end or control characters",
		"models[big].output: must be between 0 and 1000000 USD per million tokens",
		"models[neg].min_prompt_tokens: must not be negative",
		"models[neg].input: must be between 0 and 1000000 USD per million tokens",
		"models[tabs].model: must not contain whitespace at either end or control characters",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := New(tab); err == nil {
		t.Error("New accepted an invalid table")
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"3", "0.30", "0.01875", ".5", "1e3", "-1", "1000000", "0.0000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		want, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParseRate accepted %q, which is not a decimal", s)
		}
		if got := new(big.Rat).SetFrac64(int64(r), 1_000_000); got.Cmp(want) != 0 {
			t.Fatalf("ParseRate(%q) = %s", s, got.FloatString(6))
		}
		if back, err := ParseRate(r.String()); err != nil || back != r {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	f.Add([]byte("models:\n  a: {provider: x, input: 1, effective_from: 2026-01-01}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse("f.yaml", data)
		if err != nil {
			if _, ok := err.(yamldoc.Problems); !ok {
				t.Fatalf("error %T is not Problems", err)
			}
			return
		}
		p, err := New(tab)
		if err != nil {
			t.Fatalf("Parse accepted a table New rejects: %v", err)
		}
		for name, e := range tab.Models {
			if _, ok := p.Cost(Key{e.Provider, e.model(name)}, Usage{PromptTokens: e.MinPromptTokens}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); !ok {
				t.Fatalf("model of entry %q not priced", name)
			}
		}
	})
}

// dk is the key of a model of the built-in table.
func dk(model string) Key {
	for name, e := range DefaultTable().Models {
		if e.model(name) == model {
			return Key{e.Provider, model}
		}
	}
	return Key{"openai", model}
}

// TestProviderScoped: prices are keyed by provider and model, so the same
// model id may cost differently at two providers, and a provider without an
// entry of its own has no price (never another provider's).
func TestProviderScoped(t *testing.T) {
	p := mustNew(t, `
models:
  gpt-4o:       {provider: openai, input: 2.50, output: 10}
  azure-gpt-4o: {provider: azure, model: gpt-4o, input: 2.75, output: 11}
`)
	u := Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000}
	for _, tt := range []struct {
		k    Key
		want string
		ok   bool
	}{
		{Key{"openai", "gpt-4o"}, "12.5", true},
		{Key{"azure", "gpt-4o"}, "13.75", true},
		{Key{"azure-eu", "gpt-4o"}, "0", false},
		{Key{"openai", "azure-gpt-4o"}, "0", false},
	} {
		c, ok := p.Cost(tt.k, u, now)
		if ok != tt.ok || c.Total.String() != tt.want {
			t.Errorf("%s: %s %v, want %s %v", tt.k, c.Total, ok, tt.want, tt.ok)
		}
		if p.Has(tt.k, now) != tt.ok {
			t.Errorf("Has(%s) = %v", tt.k, !tt.ok)
		}
	}
	if k, ok := ParseKey("vllm/meta-llama/Llama-3.1-8B"); !ok || k != (Key{"vllm", "meta-llama/Llama-3.1-8B"}) {
		t.Errorf("ParseKey: %+v %v", k, ok)
	}
	for _, bad := range []string{"gpt-4o", "/gpt-4o", "openai/"} {
		if _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestWithAliases(t *testing.T) {
	p := mustNew(t, `
models:
  gpt-4o:  {provider: openai, input: 2.50, output: 10}
  own:     {provider: azure, model: gpt-4o-prod, input: 99}
`)
	q, err := p.WithAliases(map[Key]Key{{"azure", "gpt-4o-prod"}: {"openai", "gpt-4o"}, {"azure", "gpt-4o-dev"}: {"openai", "gpt-4o"}})
	if err != nil {
		t.Fatal(err)
	}
	u := Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000}
	for _, k := range []Key{{"azure", "gpt-4o-prod"}, {"azure", "gpt-4o-dev"}, {"openai", "gpt-4o"}} {
		if c, ok := q.Cost(k, u, now); !ok || c.Total.String() != "12.5" {
			t.Errorf("%s: %s %v", k, c.Total, ok)
		}
	}
	if p.Has(Key{"azure", "gpt-4o-dev"}, now) {
		t.Error("WithAliases changed the original")
	}
	if _, err := p.WithAliases(map[Key]Key{{"azure", "x"}: {"openai", "nope"}}); err == nil || !strings.Contains(err.Error(), "azure/x → openai/nope") {
		t.Errorf("unknown target: %v", err)
	}
}

func TestAudioCost(t *testing.T) {
	p := mustNew(t, `
models:
  whisper:  {provider: x, per_minute: 0.006}
  odd:      {provider: x, per_minute: 0.000000000007}
  tokens:   {provider: x, input: 2, audio_input: 6, output: 10}
  plain:    {provider: x, input: 2, output: 10}
`)
	tests := []struct {
		name, model string
		u           Usage
		want        Amount
		ok          bool
	}{
		{"one second of whisper is exactly 100 µ$", "whisper", Usage{AudioMillis: 1000}, 100 * MicroUSD, true},
		{"a millisecond is 0.1 µ$", "whisper", Usage{AudioMillis: 1}, 100 * NanoUSD, true},
		{"a remainder rounds up, never down", "odd", Usage{AudioMillis: 1}, 1, true},
		{"an hour", "odd", Usage{AudioMillis: 3_600_000}, 420, true},
		{"tokens on a duration-only price", "whisper", Usage{PromptTokens: 1}, 0, false},
		{"duration on a token-only price", "tokens", Usage{AudioMillis: 1000}, 0, false},
		{"audio tokens at their rate, text at input", "tokens", Usage{PromptTokens: 14, AudioTokens: 10, CompletionTokens: 45}, 10*6*MicroUSD + 4*2*MicroUSD + 45*10*MicroUSD, true},
		{"audio tokens without a rate are input", "plain", Usage{PromptTokens: 14, AudioTokens: 10}, 14 * 2 * MicroUSD, true},
		{"saturates", "whisper", Usage{AudioMillis: 1 << 62}, MaxAmount, true},
	}
	for _, tt := range tests {
		c, ok := p.Cost(Key{"x", tt.model}, tt.u, now)
		if ok != tt.ok || c.Total != tt.want {
			t.Errorf("%s: got %d (%v), want %d (%v)", tt.name, c.Total, ok, tt.want, tt.ok)
		}
	}
	if est, ok := p.Estimate(Key{"x", "tokens"}, 100, 0, now); !ok || est != 100*6*MicroUSD {
		t.Errorf("estimate bills prompt tokens at the audio rate, the highest: %d %v", est, ok)
	}
}
