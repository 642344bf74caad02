// Package procwait waits for a test server process to log that it is ready,
// for the packages under test/ that run real servers (pgtest, redistest).
package procwait

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// maxLog bounds the startup log kept for error messages.
const maxLog = 64 << 10

// Ready reads out, the output of the started cmd, until a line contains
// readyLine. It returns a channel closed once cmd has exited (and been
// waited for), so the caller can stop the server later and wait on it.
//
// If cmd exits first, or timeout passes first (then cmd is sent stop and
// waited for), the error holds the first 64 KiB of its output. The errors
// read as "exited during startup" and "not ready after <timeout>", meant to
// follow the caller's name for the server.
func Ready(cmd *exec.Cmd, out io.Reader, readyLine string, timeout time.Duration, stop os.Signal) (<-chan struct{}, error) {
	done, ready := make(chan struct{}), make(chan struct{})
	var log bytes.Buffer
	var logMu sync.Mutex
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			logMu.Lock()
			if log.Len() < maxLog {
				log.WriteString(sc.Text() + "\n")
			}
			logMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), readyLine) {
				close(ready)
				signalled = true
			}
		}
		// Keep draining so the server never blocks writing its log.
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	output := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return log.String()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ready:
		return done, nil
	case <-done:
		return nil, fmt.Errorf("exited during startup:\n%s", output())
	case <-timer.C:
		_ = cmd.Process.Signal(stop)
		<-done
		return nil, fmt.Errorf("not ready after %v:\n%s", timeout, output())
	}
}
