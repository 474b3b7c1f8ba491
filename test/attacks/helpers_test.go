package attacks

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// server counts what reaches it on loopback: TCP connections accepted, UDP
// datagrams (echoed back, so that a sender can tell), or UNIX connections.
// Every count is settled with a probe before it is read: connections are
// accepted and datagrams queued in order, so once the probe is seen,
// everything sent before it has been counted.
type server struct {
	t    testing.TB
	kind string
	ln   net.Listener
	pc   net.PacketConn
	Port int
	Path string
	addr string // where it listens (port 0: any)

	mu     sync.Mutex
	hits   int
	probes int
	wg     sync.WaitGroup
}

const probeMsg = "connvisor-attacks-probe"

var probeIP = net.IPv4(127, 0, 0, 2)

func newServer(t testing.TB, kind, path string) *server {
	t.Helper()
	addr := "127.0.0.1:0"
	if kind == "udp6" {
		addr = "[::1]:0"
	}
	return newServerAt(t, kind, path, addr)
}

// newServerAt is newServer listening on addr (tcp, udp and udp6 kinds).
func newServerAt(t testing.TB, kind, path, addr string) *server {
	t.Helper()
	s := &server{t: t, kind: kind, Path: path, addr: addr}
	var err error
	switch kind {
	case "tcp":
		s.ln, err = net.Listen("tcp4", addr)
	case "udp":
		s.pc, err = net.ListenPacket("udp4", addr)
	case "udp6":
		s.pc, err = net.ListenPacket("udp6", addr)
	case "unix":
		s.ln, err = net.Listen("unix", path)
		if err == nil {
			// The directory's mode is the only barrier the tests mean.
			err = os.Chmod(path, 0o777)
		}
	default:
		t.Fatalf("server kind %q", kind)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", kind, err)
	}
	if s.ln != nil {
		if a, ok := s.ln.Addr().(*net.TCPAddr); ok {
			s.Port = a.Port
		}
		s.wg.Add(1)
		go s.accept()
	} else {
		s.Port = s.pc.LocalAddr().(*net.UDPAddr).Port
		s.wg.Add(1)
		go s.echo()
	}
	t.Cleanup(s.close)
	return s
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		probe := false
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			// The probe comes from 127.0.0.2: attacks, from 127.0.0.1.
			probe = a.IP.Equal(probeIP)
		} else {
			// A UNIX probe says who it is; attacks send one byte.
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, len(probeMsg))
			n, _ := c.Read(buf)
			probe = string(buf[:n]) == probeMsg
		}
		c.Close()
		s.mu.Lock()
		if probe {
			s.probes++
		} else {
			s.hits++
		}
		s.mu.Unlock()
	}
}

func (s *server) echo() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		if string(buf[:n]) == probeMsg {
			s.probes++
		} else {
			s.hits++
		}
		s.mu.Unlock()
		s.pc.WriteTo(buf[:n], from)
	}
}

func (s *server) close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
	s.wg.Wait()
}

// Hits is how many connections or datagrams (probes excluded) have reached
// the server so far.
func (s *server) Hits() int {
	s.t.Helper()
	s.mu.Lock()
	want := s.probes + 1
	s.mu.Unlock()
	var err error
	switch s.kind {
	case "tcp", "unix":
		var c net.Conn
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: probeIP}}
		host, _, _ := net.SplitHostPort(s.addr)
		network, addr := "tcp4", net.JoinHostPort(host, fmt.Sprint(s.Port))
		if s.kind == "unix" {
			d.LocalAddr = nil
			network, addr = "unix", s.Path
		}
		if c, err = d.Dial(network, addr); err == nil {
			_, err = c.Write([]byte(probeMsg))
			c.Close()
		}
	case "udp", "udp6":
		var c net.Conn
		host, _, _ := net.SplitHostPort(s.addr)
		if c, err = net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(s.Port))); err == nil {
			_, err = c.Write([]byte(probeMsg))
			c.Close()
		}
	}
	if err != nil {
		s.t.Fatalf("probe %s server: %v", s.kind, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		seen, hits := s.probes, s.hits
		s.mu.Unlock()
		if seen >= want {
			return hits
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.t.Fatalf("%s server never saw its probe", s.kind)
	return 0
}

// result is what one run of the attack program printed.
type result struct {
	out     string // everything, stderr included
	verdict string // REACHED, BLOCKED, SKIP, or "" when none was printed
	detail  string // the rest of the verdict line
}

func (r result) reached() bool { return r.verdict == "REACHED" }

// line returns the first line starting with prefix, without it.
func (r result) line(prefix string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(r.out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// run runs the attack natively (flags == nil) or under `connvisor run -q
// FLAGS --`.
func run(t testing.TB, flags []string, args ...string) result {
	t.Helper()
	argv := append([]string{attackBin}, args...)
	if flags != nil {
		argv = bins.WrapArgv(append([]string{"-q"}, flags...), argv...)
	}
	r := result{out: attack(t, argv).Stdout}
	sc := bufio.NewScanner(strings.NewReader(r.out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 2)
		switch f[0] {
		case "REACHED", "BLOCKED", "SKIP":
			r.verdict = f[0]
			if len(f) > 1 {
				r.detail = f[1]
			}
		}
	}
	how := "natively"
	if flags != nil {
		how = "wrapped " + strings.Join(flags, " ")
	}
	t.Logf("%s %s: %s", how, strings.Join(args, " "), strings.TrimSpace(r.out))
	return r
}

// attack runs argv (an attack program, natively or wrapped) to its end:
// its output (stdout and stderr together) is Stdout.
func attack(t testing.TB, argv []string) testutil.Result {
	t.Helper()
	return testutil.Cmd{Argv: argv, Timeout: testutil.LongRunTimeout, Combined: true}.Run(t)
}

// denyFlags is the policy of most doors: the server is denied, everything
// else allowed, so only the door itself can reach it.
func denyFlags(port int, extra ...string) []string {
	return append([]string{"--deny", fmt.Sprintf("127.0.0.1:%d=EACCES", port), "--allow", "any"}, extra...)
}

func port(n int) string { return fmt.Sprint(n) }

// shortTempDir is a directory with a name short enough for sun_path (108
// bytes), traversable by everyone, removed after the test.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cva")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func mkdir(t testing.TB, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// sysctl sets a /proc/sys value for the test and restores it afterwards.
func sysctl(t testing.TB, name, value string) {
	t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
	old, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("sysctl %s: %v", name, err)
	}
	if strings.TrimSpace(string(old)) == value {
		return
	}
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		t.Skipf("set sysctl %s=%s (needs root): %v", name, value, err)
	}
	t.Cleanup(func() { os.WriteFile(path, old, 0) })
}
