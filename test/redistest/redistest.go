// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, stopped when the test ends. Stop and Start
// ([Server.Stop], [Server.Start]) simulate an outage and a recovery on the
// same address; Pause and Resume ([Server.Pause], [Server.Resume]) a hung
// server (SIGSTOP, SIGCONT), which still accepts connections in the kernel
// but never answers.
//
// Without redis-server on PATH the test is skipped, unless the environment
// has CI=true, where a missing server is a failure.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/test/internal/procwait"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{} // closed when cmd has exited
}

// Start starts redis-server on a free 127.0.0.1 port and returns once it
// answers PING. The server is stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: redis-server not found on PATH (CI=true): %v", err)
		}
		t.Skipf("redistest: redis-server not found on PATH, skipping (install the Debian package redis-server): %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	// The port is free when chosen but could be taken before redis binds
	// it; try a few.
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("redistest: %v", err)
		}
		t.Logf("redistest: attempt %d: %v", attempt+1, err)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop kills the server (SIGKILL: an outage, not a shutdown) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL ends a stopped process too
	<-s.done
	s.cmd = nil
}

// Pause stops the server with SIGSTOP: a hung Redis. The kernel keeps
// accepting connections and buffering commands, none is answered until
// Resume. The test's cleanup kills a paused server as usual.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume continues a paused server (SIGCONT) and returns once it answers
// PING. Commands sent while it was paused are executed first, in the order
// the server reads them.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
	if err := ping(s.Addr()); err != nil {
		s.t.Fatalf("redistest: after SIGCONT: %v", err)
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v to a server that is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// Start starts a stopped server again on the same address, empty (there
// is no persistence), and returns once it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server already running")
	}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", "", "--databases", "1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done, err := procwait.Ready(cmd, out, "Ready to accept connections", startTimeout, os.Kill)
	if err != nil {
		return fmt.Errorf("redis-server on port %d %w", s.port, err)
	}
	if err := ping(s.Addr()); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on port %d logged ready but: %w", s.port, err)
	}
	s.cmd, s.done = cmd, done
	return nil
}

// ping sends one PING, retrying the connection a bounded number of times.
func ping(addr string) error {
	var err error
	for range 50 {
		if err = pingOnce(addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling an external process, not synchronising test code
	}
	return fmt.Errorf("PING %s: %w", addr, err)
}

func pingOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
