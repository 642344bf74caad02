package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"
	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/test/pgtest"
)

const ledgerAdminToken = "adm_e2e_ledger_token_5f3a9c"

// ledgerConfig is a second config file turning the ledger on, with the
// admin token (and the Postgres DSN) in secret files.
// For sqlite it also returns the database file.
func ledgerConfig(t *testing.T, backend, dsn string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := fmt.Sprintf("version: 1\nadmin:\n  token: {file: %s}\nledger:\n  backend: %s\n", write("admin-token", ledgerAdminToken), backend)
	if backend == "postgres" {
		return cfg + fmt.Sprintf("  postgres:\n    dsn: {file: %s}\n", write("dsn", dsn)), ""
	}
	db := filepath.Join(dir, "ledger.db")
	return cfg + fmt.Sprintf("  sqlite: {path: %s}\n", db), db
}

// cost prices usage read from a fixture's usage object on model.
func cost(t *testing.T, model string, u gjson.Result) pricing.Amount {
	t.Helper()
	c, ok := pricing.Default().Cost(pricing.Key{Provider: "openai", Model: model}, pricing.Usage{PromptTokens: u.Get("prompt_tokens").Int(),
		CachedTokens: u.Get("prompt_tokens_details.cached_tokens").Int(), CompletionTokens: u.Get("completion_tokens").Int()}, time.Now())
	if !ok {
		t.Fatalf("no price for %s", model)
	}
	return c.Total
}

// Traffic through the stand-in lands in the ledger with exact costs: a
// chat completion, a stream whose usage the gateway asked for, an
// embedding and a refusal, read back through the analytics API.
func TestLedger(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = pgtest.Start(t).CreateDB("tollgate")
			}
			extra, _ := ledgerConfig(t, backend, dsn)
			h := newHarness(t, harnessOptions{extra: extra})
			ctx := context.Background()
			if _, err := h.client.Chat.Completions.New(ctx, chatParams("smart-default")); err != nil {
				t.Fatal(err)
			}
			stream := h.client.Chat.Completions.NewStreaming(ctx, chatParams("smart-default"))
			for stream.Next() {
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := h.client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed-default",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("The food was delicious")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.client.Chat.Completions.New(ctx, chatParams("no-such-model")); err == nil {
				t.Fatal("unknown model accepted")
			}

			want := cost(t, "gpt-4o-mini", gjson.GetBytes(fixture(t, "openai/chat_response.json"), "usage")) +
				cost(t, "gpt-4o-mini", gjson.Get(lastUsageChunk(fixture(t, "openai/chat_stream.sse")), "usage")) +
				cost(t, "text-embedding-3-small", gjson.GetBytes(fixture(t, "openai/embeddings_response.json"), "usage"))
			// The log lines say the same.
			var logged pricing.Amount
			for _, l := range h.waitRequestLogs(4) {
				if c := gjson.Get(l, "cost_usd").Str; c != "" {
					a, err := pricing.ParseUSD(c)
					if err != nil {
						t.Fatal(err)
					}
					logged += a
				}
			}
			if logged != want {
				t.Fatalf("logged cost %s, want %s", logged, want)
			}

			var total struct {
				Groups []struct {
					Requests  int64            `json:"requests"`
					Errors    int64            `json:"errors"`
					Refusals  map[string]int64 `json:"refusals"`
					Tokens    map[string]int64 `json:"tokens"`
					CostPico  int64            `json:"cost_pico_usd"`
					CostUSD   string           `json:"cost_usd"`
					Estimated int64            `json:"estimated_requests"`
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				// The writer flushes within half a second; poll until all four rows are in.
				analytics(t, h, "/v1/analytics/summary?period=1h", &total)
				if len(total.Groups) == 1 && total.Groups[0].Requests == 4 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ledger summary never reached 4 requests: %+v", total)
				}
				time.Sleep(20 * time.Millisecond) // polling an observable condition with a deadline
			}
			g := total.Groups[0]
			if g.CostPico != int64(want) || g.CostUSD != want.String() || g.Errors != 1 || g.Refusals["model_not_found"] != 1 || g.Estimated != 0 {
				t.Errorf("summary %+v, want cost %s (%d pico) and one model_not_found refusal", g, want, int64(want))
			}
			chat := gjson.GetBytes(fixture(t, "openai/chat_response.json"), "usage")
			streamed := gjson.Get(lastUsageChunk(fixture(t, "openai/chat_stream.sse")), "usage")
			embed := gjson.GetBytes(fixture(t, "openai/embeddings_response.json"), "usage")
			if p := chat.Get("prompt_tokens").Int() + streamed.Get("prompt_tokens").Int() + embed.Get("prompt_tokens").Int(); g.Tokens["prompt"] != p {
				t.Errorf("prompt tokens %d, want %d", g.Tokens["prompt"], p)
			}

			var byModel struct {
				Groups []struct {
					Group    string `json:"group"`
					Requests int64  `json:"requests"`
					CostUSD  string `json:"cost_usd"`
				}
			}
			analytics(t, h, "/v1/analytics/summary?period=1h&group_by=model", &byModel)
			models := map[string]int64{}
			for _, m := range byModel.Groups {
				models[m.Group] = m.Requests
			}
			if models["openai/gpt-4o-mini"] != 2 || models["openai/text-embedding-3-small"] != 1 || models[""] != 1 {
				t.Errorf("by model %+v", byModel.Groups)
			}
		})
	}
}

// A gateway shut down right after its traffic writes every row before
// Shutdown returns.
func TestLedgerDrainOnShutdown(t *testing.T) {
	extra, db := ledgerConfig(t, "sqlite", "")
	h := newHarness(t, harnessOptions{extra: extra})
	const n = 12
	done := make(chan error, n)
	for range n {
		go func() {
			_, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"))
			done <- err
		}()
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	h.gw.Shutdown(context.Background())
	sqlDB, err := sql.Open("sqlite3", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	var rows int
	if err := sqlDB.QueryRow(`SELECT COUNT(*) FROM requests WHERE status = 200 AND cost_pico > 0`).Scan(&rows); err != nil || rows != n {
		t.Fatalf("rows after shutdown = %d (%v), want %d", rows, err, n)
	}
}

func analytics(t *testing.T, h *harness, path string, into any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.gw.AdminAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+ledgerAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatal(err)
	}
}
