package cache

import "testing"

func TestKey(t *testing.T) {
	base := KeyInput{Tenant: "acme", Scope: "default", Endpoint: "chat", Provider: "openai", ProviderModel: "gpt-4o",
		Model: "smart-default", Strategy: Content,
		Body: []byte(`{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"hi"}]}`)}
	key := func(t *testing.T, in KeyInput) string {
		t.Helper()
		k, err := Key(in)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	with := func(f func(*KeyInput)) KeyInput { in := base; f(&in); return in }
	body := func(s string) func(*KeyInput) { return func(in *KeyInput) { in.Body = []byte(s) } }
	strategy := func(s Strategy, f func(*KeyInput)) func(*KeyInput) {
		return func(in *KeyInput) { in.Strategy = s; f(in) }
	}
	none := func(*KeyInput) {}

	cases := []struct {
		name string
		a, b func(*KeyInput)
		same bool
	}{
		{"key order and whitespace", none, body(` { "messages" : [ {"content":"hi", "role":"user"} ], "temperature":0, "model":"smart-default" }`), true},
		{"escaped spelling of the same text", none, body(`{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"h\u0069"}]}`), true},
		{"tenant", none, func(in *KeyInput) { in.Tenant = "globex" }, false},
		{"guardrail scope", none, func(in *KeyInput) { in.Scope = "strict" }, false},
		{"provider model", none, func(in *KeyInput) { in.ProviderModel = "gpt-4o-mini" }, false},
		{"provider", none, func(in *KeyInput) { in.Provider = "azure" }, false},
		{"content ignores the alias", none, func(in *KeyInput) { in.Model = "other-alias" }, true},
		{"content ignores temperature", none, body(`{"model":"smart-default","temperature":1,"messages":[{"role":"user","content":"hi"}]}`), true},
		{"content covers messages", none, body(`{"messages":[{"role":"user","content":"hello"}]}`), false},
		{"content covers roles", none, body(`{"messages":[{"role":"system","content":"hi"}]}`), false},
		{"content covers tools", none, body(`{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}`), false},
		{"content+model covers the alias", strategy(ContentModel, none), strategy(ContentModel, func(in *KeyInput) { in.Model = "other" }), false},
		{"strategies never share keys", none, strategy(ContentModel, none), false},
		{"full_request covers temperature", strategy(FullRequest, none),
			strategy(FullRequest, body(`{"model":"smart-default","temperature":0.5,"messages":[{"role":"user","content":"hi"}]}`)), false},
		{"full_request: number spelling", strategy(FullRequest, none),
			strategy(FullRequest, body(`{"model":"smart-default","temperature":0.0e0,"messages":[{"role":"user","content":"hi"}]}`)), true},
		{"full_request ignores volatile and gateway fields", strategy(FullRequest, none),
			strategy(FullRequest, body(`{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"hi"}],"user":"u1","metadata":{"ts":"2026-12-02T10:00:00Z"},"stream":true,"stream_options":{"include_usage":true},"tollgate_app":"x"}`)), true},
		{"full_request covers the alias", strategy(FullRequest, none), strategy(FullRequest, func(in *KeyInput) { in.Model = "other" }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := key(t, with(c.a)), key(t, with(c.b))
			if (a == b) != c.same {
				t.Errorf("same key = %v, want %v", a == b, c.same)
			}
		})
	}
}

func TestKeyRefusesNonObjects(t *testing.T) {
	for _, b := range []string{``, `[]`, `{"a":`, `"x"`} {
		if _, err := Key(KeyInput{Strategy: Content, Body: []byte(b)}); err == nil {
			t.Errorf("Key(%q): no error", b)
		}
	}
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": Content, "content": Content, "content+model": ContentModel, "full_request": FullRequest} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("semantic"); err == nil {
		t.Error("ParseStrategy(semantic): no error")
	}
}

func FuzzKey(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"temperature":0}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]},"tools":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range []Strategy{Content, ContentModel, FullRequest} {
			k1, err := Key(KeyInput{Strategy: s, Body: body})
			if err != nil {
				continue
			}
			k2, _ := Key(KeyInput{Strategy: s, Body: body})
			if k1 != k2 || len(k1) != 64 {
				t.Fatalf("unstable or malformed key %q / %q", k1, k2)
			}
		}
	})
}
