package redistest

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func TestStopStart(t *testing.T) {
	s := Start(t)
	addr := s.Addr()
	if err := pingOnce(addr); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	s.Stop()
	if err := pingOnce(addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // idempotent
	s.Start()
	if s.Addr() != addr {
		t.Fatalf("address changed from %s to %s", addr, s.Addr())
	}
	if err := pingOnce(addr); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
	for _, s := range []*Server{a, b} {
		if err := pingOnce(s.Addr()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPauseResume: a paused server accepts connections but does not answer;
// once resumed it answers, including what was sent while it was paused.
func TestPauseResume(t *testing.T) {
	s := Start(t)
	s.Pause()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial a paused server: %v (the kernel should accept)", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatal("a paused server answered")
	}
	s.Resume()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure guard
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("the PING sent while paused: %q, %v", line, err)
	}
	s.Pause() // cleanup kills a paused server
}
