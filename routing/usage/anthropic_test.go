package usage

import (
	"bytes"
	"testing"

	"github.com/tidwall/gjson"
)

func TestFromAnthropicResponseFixture(t *testing.T) {
	body := readFixture(t, "anthropic/messages_response.json")
	a, ok := FromAnthropic(Anthropic{}, []byte(gjson.GetBytes(body, "usage").Raw))
	want := Anthropic{InputTokens: 46, CacheReadInputTokens: 2048, OutputTokens: 29, HasTTLSplit: true}
	if !ok || a != want {
		t.Fatalf("got %+v, %v; want %+v", a, ok, want)
	}
	u := a.OpenAI()
	wantU := Usage{PromptTokens: 46 + 2048, CompletionTokens: 29, TotalTokens: 46 + 2048 + 29, CachedTokens: 2048}
	if u != wantU {
		t.Fatalf("OpenAI() = %+v, want %+v", u, wantU)
	}
}

// TestFromAnthropicStreams folds the usage of every event of each stream
// fixture, as a stream translator does, and checks that the final
// message_delta's cumulative output replaces message_start's, never adds.
func TestFromAnthropicStreams(t *testing.T) {
	tests := []struct {
		file string
		want Anthropic
	}{
		{"anthropic/messages_stream.sse", Anthropic{InputTokens: 24, OutputTokens: 27, HasTTLSplit: true}},
		{"anthropic/messages_stream_tool_use.sse", Anthropic{InputTokens: 412, OutputTokens: 71, HasTTLSplit: true}},
		// Cut by an error: only message_start's counts are known.
		{"anthropic/messages_stream_error.sse", Anthropic{InputTokens: 24, OutputTokens: 4, HasTTLSplit: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var a Anthropic
			seen := 0
			for _, ev := range bytes.Split(readFixture(t, tt.file), []byte("\n\n")) {
				_, data, ok := bytes.Cut(ev, []byte("\ndata: "))
				if !ok {
					continue
				}
				obj := gjson.GetBytes(data, "usage")
				if !obj.Exists() {
					obj = gjson.GetBytes(data, "message.usage")
				}
				if !obj.Exists() {
					continue
				}
				var got bool
				if a, got = FromAnthropic(a, []byte(obj.Raw)); !got {
					t.Fatalf("usage %s not read", obj.Raw)
				}
				seen++
			}
			if seen == 0 || a != tt.want {
				t.Fatalf("got %+v after %d usage objects; want %+v", a, seen, tt.want)
			}
		})
	}
}

func TestFromAnthropic(t *testing.T) {
	prev := Anthropic{InputTokens: 10, CacheCreationInputTokens: 3, CacheReadInputTokens: 5, OutputTokens: 1}
	tests := []struct {
		name string
		obj  string
		want Anthropic
		ok   bool
	}{
		{"older message_delta: output only", `{"output_tokens":15}`, Anthropic{InputTokens: 10, CacheCreationInputTokens: 3, CacheReadInputTokens: 5, OutputTokens: 15}, true},
		{"nulls keep prev", `{"input_tokens":null,"output_tokens":7}`, Anthropic{InputTokens: 10, CacheCreationInputTokens: 3, CacheReadInputTokens: 5, OutputTokens: 7}, true},
		{"all replaced", `{"input_tokens":1,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":4}`, Anthropic{InputTokens: 1, CacheCreationInputTokens: 2, CacheReadInputTokens: 3, OutputTokens: 4}, true},
		{"padding and exponent", `{ "output_tokens" : 2e1   }`, Anthropic{InputTokens: 10, CacheCreationInputTokens: 3, CacheReadInputTokens: 5, OutputTokens: 20}, true},
		{"cache writes split by TTL", `{"input_tokens":1,"cache_creation_input_tokens":30,"cache_read_input_tokens":0,"output_tokens":4,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20}}`,
			Anthropic{InputTokens: 1, CacheCreationInputTokens: 30, OutputTokens: 4, Ephemeral5mInputTokens: 10, Ephemeral1hInputTokens: 20, HasTTLSplit: true}, true},
		{"bad TTL split", `{"output_tokens":4,"cache_creation":{"ephemeral_1h_input_tokens":-2}}`, prev, false},
		{"no counts", `{"service_tier":"standard"}`, prev, false},
		{"empty object", `{}`, prev, false},
		{"not an object", `[1]`, prev, false},
		{"invalid JSON", `{"output_tokens":1`, prev, false},
		{"negative", `{"output_tokens":-1}`, prev, false},
		{"fraction", `{"output_tokens":1.5}`, prev, false},
		{"string", `{"input_tokens":"12","output_tokens":1}`, prev, false},
		{"too large", `{"output_tokens":9007199254740993}`, prev, false},
		{"empty", ``, prev, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromAnthropic(prev, []byte(tt.obj))
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestFromAnthropicNoAllocs(t *testing.T) {
	obj := []byte(`{"input_tokens":24,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":27}`)
	if n := testing.AllocsPerRun(100, func() { FromAnthropic(Anthropic{}, obj) }); n != 0 {
		t.Fatalf("%v allocs per call, want 0", n)
	}
}

func FuzzFromAnthropic(f *testing.F) {
	f.Add([]byte(`{"input_tokens":24,"output_tokens":27}`))
	f.Add([]byte(`{"output_tokens":1e3}`))
	f.Add([]byte(`{"cache_read_input_tokens":9007199254740992,"cache_creation_input_tokens":9007199254740992,"input_tokens":9007199254740992,"output_tokens":9007199254740992}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		a, ok := FromAnthropic(Anthropic{}, obj)
		if !ok && a != (Anthropic{}) {
			t.Fatalf("failed read changed counts: %+v", a)
		}
		u := a.OpenAI()
		if u.PromptTokens < 0 || u.TotalTokens < u.PromptTokens || u.CachedTokens > u.PromptTokens {
			t.Fatalf("inconsistent usage %+v from %+v", u, a)
		}
	})
}

// TestAnthropicCacheWritesByTTL: cache writes become 5-minute and 1-hour
// writes that always add up to cache_creation_input_tokens.
func TestAnthropicCacheWritesByTTL(t *testing.T) {
	for _, tt := range []struct {
		name   string
		a      Anthropic
		w5, w1 int64
	}{
		{"no split: the default 5-minute TTL", Anthropic{CacheCreationInputTokens: 100}, 100, 0},
		{"split", Anthropic{CacheCreationInputTokens: 100, Ephemeral5mInputTokens: 40, Ephemeral1hInputTokens: 60, HasTTLSplit: true}, 40, 60},
		{"split short of the total: the rest is 5-minute", Anthropic{CacheCreationInputTokens: 100, Ephemeral1hInputTokens: 60, HasTTLSplit: true}, 40, 60},
		{"split beyond the total is capped", Anthropic{CacheCreationInputTokens: 50, Ephemeral1hInputTokens: 60, HasTTLSplit: true}, 0, 50},
	} {
		u := tt.a.OpenAI()
		if u.CacheWrite5mTokens != tt.w5 || u.CacheWrite1hTokens != tt.w1 || u.PromptTokens != tt.a.CacheCreationInputTokens {
			t.Errorf("%s: %+v", tt.name, u)
		}
	}
}
