package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Listener is a loopback server outside the tree under test: it accepts
// each connection, counts it, writes its greeting (if any) and closes it,
// until the test ends. Its counts tell whether a connect really happened.
type Listener struct {
	Addr     string // host:port
	Port     int
	ln       net.Listener
	greeting string
	accepted atomic.Int64
	wg       sync.WaitGroup
}

// Listen starts a Listener on a free port of 127.0.0.1.
func Listen(t testing.TB) *Listener { return ListenAt(t, "tcp4", "127.0.0.1:0", "") }

// ListenAt starts a Listener on addr (a stream network: tcp, tcp4, tcp6)
// that writes greeting to each connection before closing it.
func ListenAt(t testing.TB, network, addr, greeting string) *Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	l := &Listener{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, greeting: greeting}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return l
}

func (l *Listener) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.accepted.Add(1)
		if l.greeting != "" {
			c.Write([]byte(l.greeting))
		}
		c.Close()
	}
}

// Accepted is how many connections the Listener has accepted so far.
func (l *Listener) Accepted() int64 { return l.accepted.Load() }

// WaitAccepted waits up to AcceptWait for n connections (a client may close
// before the accept runs), then a little more to see any beyond n, and
// returns how many it saw.
func (l *Listener) WaitAccepted(n int64) int64 {
	deadline := time.Now().Add(AcceptWait)
	for l.accepted.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and no more than n
	return l.accepted.Load()
}

// FreePort is a port of 127.0.0.1 that nothing listens on: for a real
// refusal, or for a server that needs its port given.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
