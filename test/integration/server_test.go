package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// server is a loopback or UNIX server that answers each "ping ..." line
// (or datagram) with "pong" and counts them. Its probe tells, without
// sleeping, whether anything reached it before: connections are accepted
// and datagrams queued in order, so when the probe is answered everything
// sent earlier has been seen.
type server struct {
	t     testing.TB
	kind  string // connector's spec kind: tcp4, tcp6, udp4, udp6, unix
	where string // connector's spec address
	ln    net.Listener
	pc    net.PacketConn

	mu       sync.Mutex
	accepted int                   // stream connections accepted, probes included
	probes   int                   // probes made so far
	counted  int                   // what reached returned in total so far
	pings    []string              // the ping lines received
	creds    map[string]unix.Ucred // SO_PEERCRED of UNIX connections by ping line
	wg       sync.WaitGroup
}

// newServer starts a server for kind: tcp4, tcp6, udp4, udp6, unix (a path
// in a temporary directory) or unix@ (an abstract name).
func newServer(t testing.TB, kind string) *server {
	t.Helper()
	s := &server{t: t, kind: kind}
	var err error
	switch kind {
	case "tcp4":
		s.ln, err = net.Listen("tcp4", "127.0.0.1:0")
	case "tcp6":
		s.ln, err = net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
	case "udp4":
		s.pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
	case "udp6":
		s.pc, err = net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
	case "unix":
		// Short names: sun_path holds 108 bytes and TempDir paths are long.
		dir, derr := os.MkdirTemp("", "cv")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.where = filepath.Join(dir, "s.sock")
		s.ln, err = net.Listen("unix", s.where)
	case "unix@":
		s.kind = "unix"
		s.where = fmt.Sprintf("@connvisor-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		s.ln, err = net.Listen("unix", s.where)
	default:
		t.Fatalf("newServer: unknown kind %q", kind)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", kind, err)
	}
	if s.where == "" {
		if s.ln != nil {
			s.where = s.ln.Addr().String()
		} else {
			s.where = s.pc.LocalAddr().String()
		}
	}
	s.wg.Add(1)
	if s.ln != nil {
		go s.serveStream()
	} else {
		go s.serveDatagram()
	}
	t.Cleanup(s.close)
	return s
}

func (s *server) close() {
	if s.ln != nil {
		s.ln.Close()
	} else {
		s.pc.Close()
	}
	s.wg.Wait()
}

// spec is the server's address as connector and goconnector take it.
func (s *server) spec() []string { return []string{s.kind, s.where} }

// port is the server's port, 0 for UNIX.
func (s *server) port() int {
	if s.kind == "unix" {
		return 0
	}
	_, p, _ := net.SplitHostPort(s.where)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *server) serveStream() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		before := s.accepted
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			if line == "probe" {
				fmt.Fprintf(c, "%d\n", before)
				return
			}
			cred, credOK := peerCred(c)
			s.mu.Lock()
			s.pings = append(s.pings, line)
			if credOK {
				if s.creds == nil {
					s.creds = map[string]unix.Ucred{}
				}
				s.creds[line] = cred
			}
			s.mu.Unlock()
			fmt.Fprintf(c, "pong\n")
		}()
	}
}

func (s *server) serveDatagram() {
	defer s.wg.Done()
	buf := make([]byte, 512)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		line := strings.TrimSpace(string(buf[:n]))
		s.mu.Lock()
		if line == "probe" {
			fmt.Fprintf(writerTo{s.pc, from}, "%d\n", len(s.pings))
		} else {
			s.pings = append(s.pings, line)
			s.pc.WriteTo([]byte("pong\n"), from)
		}
		s.mu.Unlock()
	}
}

type writerTo struct {
	pc   net.PacketConn
	addr net.Addr
}

func (w writerTo) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.addr) }

// reached returns how many connections (stream) or pings (datagram) reached
// the server since the previous call. It makes a connection of its own from the test process,
// which no filter watches.
func (s *server) reached() int {
	s.t.Helper()
	network, addr := s.kind, s.where
	switch network {
	case "unix":
	case "tcp4", "tcp6", "udp4", "udp6":
		network = network[:3]
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		s.t.Fatalf("probe %s %s: %v", s.kind, s.where, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("probe\n")); err != nil {
		s.t.Fatalf("probe %s %s: %v", s.kind, s.where, err)
	}
	// One read: a datagram answer must be read whole.
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	if err != nil {
		s.t.Fatalf("probe %s %s: read answer: %v", s.kind, s.where, err)
	}
	var n int
	if _, err := fmt.Sscan(string(buf[:k]), &n); err != nil {
		s.t.Fatalf("probe %s %s: read answer: %v", s.kind, s.where, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc == nil {
		n -= s.probes
		s.probes++
	}
	delta := n - s.counted
	s.counted = n
	return delta
}

// received returns the ping lines the server got, e.g. "ping pid=1 tid=2".
func (s *server) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.pings...)
}

// peerCred is what SO_PEERCRED says about a UNIX peer: the process that
// called connect, with its credentials at that time.
func peerCred(c net.Conn) (unix.Ucred, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return unix.Ucred{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return unix.Ucred{}, false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil {
		return unix.Ucred{}, false
	}
	return *cred, true
}

// peerCreds returns the SO_PEERCRED of each UNIX connection by ping line.
func (s *server) peerCreds() map[string]unix.Ucred {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]unix.Ucred{}
	for k, v := range s.creds {
		out[k] = v
	}
	return out
}
