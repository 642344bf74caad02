package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/ncruces/go-sqlite3/driver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-ai/tollgate/test/pgtest"
)

// helperEnv makes the test binary act as the tollgate binary: the standard
// os/exec helper-process pattern, so the test signals a real process with its
// real signal handling (main's signal.NotifyContext) without a go build.
const helperEnv = "TOLLGATE_TEST_AS_BINARY"

func TestHelperTollgateProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestLedgerSIGTERM")
	}
	args := []string{}
	for i, a := range os.Args {
		if a == "--" {
			args = os.Args[i+1:]
			break
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, args, os.Stdout, os.Stderr))
}

// TestLedgerSIGTERM runs `tollgate serve` as a process with a usage ledger,
// drives ext_proc streams through it from several clients, sends SIGTERM
// while they are in flight, and checks after the process exits that every
// request the gateway logged as finished has its row. Requests the gateway
// finished are exactly those with a "request" log line; a stream the drain
// refused never gets one.
func TestLedgerSIGTERM(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "ledger.db")
		sigtermUnderLoad(t, "ledger: {sqlite: {path: "+db+"}}\n", nil, "sqlite3", "file:"+db)
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.Start(t)
		dsn := pg.CreateDB("sigterm")
		sigtermUnderLoad(t, "ledger: {backend: postgres, postgres: {dsn: {env: LEDGER_DSN}}}\n", []string{"LEDGER_DSN=" + dsn}, "pgx", dsn)
	})
}

func sigtermUnderLoad(t *testing.T, ledgerCfg string, env []string, driver, dsn string) {
	dir := t.TempDir()
	cfg := "version: 1\nproviders:\n  - {name: openai, schema: openai, cluster: openai}\nmodels:\n  - {name: m, provider: openai, model: gpt-4o}\n" + ledgerCfg
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "g.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTollgateProcess$", "--",
		"serve", "--config", dir, "--grpc-addr", "unix://"+sock, "--admin-addr", "", "--drain-timeout", "60s")
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// Every log line: "tollgate serving" says it is ready; each "request"
	// line is a finished request.
	ready := make(chan struct{})
	logged := make(chan string, 1<<16)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			var l struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				t.Logf("serve: %s", sc.Text()) // the test framework's own output
				continue
			}
			switch l.Msg {
			case "tollgate serving":
				once.Do(func() { close(ready) })
			case "request":
				logged <- l.RequestID
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-exited:
		<-scanned
		t.Fatalf("serve exited before serving: %v", exitErr)
	case <-time.After(60 * time.Second): // failure guard
		t.Fatal("serve did not start")
	}

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := extprocv3.NewExternalProcessorClient(conn)

	// Clients loop until the gateway stops taking streams; the signal goes
	// out once enough requests have finished, so it lands under load.
	const workers, perWorker, signalAfter = 8, 400, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent int
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("sig-%d-%d", w, i)
				mu.Lock()
				sent++
				mu.Unlock()
				if err := ledgerRequest(client, id); err != nil {
					return // the gateway is draining or gone
				}
			}
		}()
	}
	finished := map[string]bool{}
	for len(finished) < signalAfter {
		select {
		case id, ok := <-logged:
			if !ok {
				t.Fatal("log ended before the signal")
			}
			finished[id] = true
		case <-time.After(60 * time.Second): // failure guard
			t.Fatalf("only %d requests finished", len(finished))
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(120 * time.Second): // failure guard
		t.Fatal("serve did not exit after SIGTERM")
	}
	if exitErr != nil {
		t.Fatalf("serve exit: %v", exitErr)
	}
	wg.Wait()
	<-scanned
	for id := range logged {
		finished[id] = true
	}
	if len(finished) >= sent {
		t.Logf("note: all %d requests finished before the drain refused any", sent)
	}

	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM requests`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for id := range finished {
		if !stored[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d finished requests have no ledger row, e.g. %v", len(missing), len(finished), missing[:min(5, len(missing))])
	}
	if len(stored) != len(finished) {
		t.Errorf("%d rows for %d finished requests", len(stored), len(finished))
	}
	t.Logf("%d streams started, %d finished and stored", sent, len(finished))
}

// ledgerRequest is one chat request and its response over ext_proc, as Envoy
// sends them, ending the stream as Envoy does at the end of the request.
func ledgerRequest(client extprocv3.ExternalProcessorClient, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := client.Process(ctx)
	if err != nil {
		return err
	}
	hm := func(kv ...string) *corev3.HeaderMap {
		m := &corev3.HeaderMap{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return m
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: hm(":method", "POST", ":path", "/v1/chat/completions", "x-request-id", id)}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
			Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: hm(":status", "200", "content-type", "application/json")}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
			Body: []byte(`{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`), EndOfStream: true}}},
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			return err
		}
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if resp.GetImmediateResponse() != nil {
			break
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	// The stream ends when the gateway returns: wait for it, so the
	// request has finished (and been logged) before the next one starts.
	if _, err := s.Recv(); err != io.EOF {
		return fmt.Errorf("stream end: %v", err)
	}
	return nil
}
