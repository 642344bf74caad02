package procwait

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestReady(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		wantErr string // "" means ready
		wantLog string
	}{
		{name: "ready line", script: "echo booting; echo 'x Ready to accept y'; exit 0", timeout: time.Minute},
		{name: "exits first", script: "echo boom; exit 3", timeout: time.Minute, wantErr: "exited during startup", wantLog: "boom"},
		// The process never gets ready; stop (SIGKILL) ends it at the timeout.
		{name: "timeout", script: "echo waiting; exec sleep 600", timeout: 2 * time.Second, wantErr: "not ready after 2s", wantLog: "waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tt.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done, err := Ready(cmd, out, "Ready to accept", tt.timeout, os.Kill)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Ready: %v", err)
				}
				<-done // the script exits right after its ready line
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.wantLog) {
				t.Fatalf("Ready error = %v, want %q with log %q", err, tt.wantErr, tt.wantLog)
			}
			if cmd.ProcessState == nil {
				t.Fatal("process not waited for after a failed start")
			}
		})
	}
}
