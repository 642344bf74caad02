package redistest

import "testing"

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
