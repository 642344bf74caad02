// Package pgtest runs a real PostgreSQL server for tests: initdb into a fresh
// directory, postgres on a free loopback port, stopped and removed when the
// test ends. [Server.Stop] and [Server.Start] simulate an outage and a
// recovery on the same data directory and port.
//
// The binaries are looked for under /usr/lib/postgresql/*/bin (the Debian
// package postgresql) and on PATH. Without them the test is skipped, unless
// the environment has CI=true, where they are a failure. PostgreSQL refuses to
// run as root, so under root the server runs as the unprivileged postgres
// user the Debian package creates, in a directory owned by that user.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/test/internal/procwait"
)

// startTimeout bounds how long initdb or a server start may take.
const startTimeout = 60 * time.Second

// Server is one postgres process and its data directory.
type Server struct {
	t    testing.TB
	bin  string // directory of initdb, postgres, createdb
	dir  string // owns data/
	port int
	cred *syscall.Credential // the postgres user when running as root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{}
}

// Start initialises a cluster and starts postgres on a free 127.0.0.1 port,
// returning once it accepts connections. Everything is removed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %v (CI=true)", err)
		}
		t.Skipf("pgtest: %v, skipping (install the Debian package postgresql)", err)
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			t.Fatalf("pgtest: running as root needs the postgres user: %v", err)
		}
	}
	// Not t.TempDir: its parents are private to root, and the server may run
	// as another user.
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(s.dir) })
	t.Cleanup(s.Stop)
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	initdb := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		if err = s.start(); err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("pgtest: %v", err)
		}
		t.Logf("pgtest: attempt %d: %v", attempt+1, err)
	}
}

// findBin returns the newest /usr/lib/postgresql/<v>/bin holding postgres,
// or the directory of postgres on PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("postgres binaries not found under /usr/lib/postgresql/*/bin or on PATH")
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// DSN is a connection string for the database name as the superuser.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr(), name)
}

// CreateDB creates a fresh database and returns its DSN, so tests sharing a
// server do not see each other's tables.
func (s *Server) CreateDB(name string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("pgtest: createdb %s: %v\n%s", name, err, out)
	}
	return s.DSN(name)
}

// Stop shuts the server down at once (SIGQUIT: immediate shutdown, as after
// a crash, with recovery on the next start) and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	<-s.done
	s.cmd = nil
}

// Start starts a stopped server again on the same data directory and port.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("pgtest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server already running")
	}
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off", // not synchronous_commit=off: Stop must not lose commits
		"-c", "max_connections=50", "-c", "logging_collector=off")
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done, err := procwait.Ready(cmd, out, "database system is ready to accept connections", startTimeout, syscall.SIGQUIT)
	if err != nil {
		return fmt.Errorf("postgres on port %d %w", s.port, err)
	}
	s.cmd, s.done = cmd, done
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
