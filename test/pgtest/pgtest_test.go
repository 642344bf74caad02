package pgtest

import (
	"net"
	"testing"
	"time"
)

func TestStartStopStart(t *testing.T) {
	s := Start(t)
	dial := func() error {
		c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial running server: %v", err)
	}
	s.CreateDB("one")
	s.Stop()
	if err := dial(); err == nil {
		t.Fatal("stopped server still accepts connections")
	}
	s.Start()
	if err := dial(); err != nil {
		t.Fatalf("dial restarted server: %v", err)
	}
	s.CreateDB("two") // the data directory survived: createdb needs the cluster
}
