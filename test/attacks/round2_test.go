package attacks

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The doors of issue 12 ("security, round two"), each natively first (the
// door works) and then wrapped (it must not).

// TestSourceRoute: socket options that send a packet somewhere the decided
// destination does not name.
func TestSourceRoute(t *testing.T) {
	needAttack(t)
	t.Run("rthdr6-segment-routing", func(t *testing.T) {
		// The receiving end must process segment routing headers.
		sysctl(t, "net.ipv6.conf.all.seg6_enabled", "1")
		sysctl(t, "net.ipv6.conf.lo.seg6_enabled", "1")
		// sendto names [::1:0] (allowed), the header sends the datagram
		// to [::1] (denied). ::1:0 has the word sum of ::1, so the UDP
		// checksum, computed on the named address, holds at ::1.
		door{server: "udp6", deny: "[::1]:%d",
			args:       func(p int) []string { return []string{"rthdr6", "::1:0", port(p)} },
			nativeSkip: map[string]string{"EINVAL": "this kernel takes no type 4 routing header (CONFIG_IPV6_SEG6_LWTUNNEL?)"},
			open:       "setsockopt(IPV6_RTHDR) with a segment routing header reroutes a datagram decided for an allowed address to a denied one; refuse the option in the filter"}.prove(t)
	})
	// The option alone: natively the kernel takes it; wrapped it is
	// refused on its level and name (registers), whatever the value says,
	// also with the high 32 bits of the level or name set.
	for _, opt := range []string{"ip-options", "ip-options-hi", "rthdr6", "rthdr6-hi", "pktoptions2292"} {
		t.Run("sockopt-"+opt, func(t *testing.T) {
			nat := run(t, nil, "sockopt", opt)
			if !nat.reached() {
				if opt == "pktoptions2292" && strings.Contains(nat.out, "EINVAL") {
					t.Skip("RFC 2292 sticky options take only a type 2 routing header, and this kernel has no CONFIG_IPV6_MIP6; the filter test covers the option")
				}
				t.Fatalf("natively the option is refused, so the row proves nothing:\n%s", nat.out)
			}
			wr := run(t, denyFlags(9), "sockopt", opt)
			if wr.reached() {
				t.Fatalf("OPEN DOOR: setsockopt %s is taken wrapped: %s", opt, wr.out)
			}
			if wr.verdict != "BLOCKED" || !strings.HasPrefix(wr.detail, "EPERM") {
				t.Fatalf("wrapped: want BLOCKED EPERM:\n%s", wr.out)
			}
			// Nothing is denied under an allow-all policy: the kernel takes
			// the option as natively.
			if all := run(t, []string{"--default", "allow"}, "sockopt", opt); !all.reached() {
				t.Errorf("under an allow-all policy the option is refused:\n%s", all.out)
			}
		})
	}
}

// TestRawPastCreation: raw and packet sockets that the creation rule did
// not catch (root target).
func TestRawPastCreation(t *testing.T) {
	needAttack(t)
	// A frame sent on lo through a packet socket is routed as input:
	// 127.0.0.1 as source and destination needs these two.
	loopbackFrames := func(t *testing.T) {
		sysctl(t, "net.ipv4.conf.lo.route_localnet", "1")
		sysctl(t, "net.ipv4.conf.lo.accept_local", "1")
	}
	pkt := func(how string) func(int) []string {
		return func(p int) []string { return []string{"packet-udp", "127.0.0.1", port(p), how} }
	}
	t.Run("raw-socket-domain-high-bits", door{server: "udp", args: pkt("hi"),
		open: "socket((1<<32)|AF_INET, SOCK_RAW) is not trapped: the filter compares 64 bits where the kernel reads an int"}.prove)
	t.Run("inet-sock-packet", func(t *testing.T) {
		loopbackFrames(t)
		door{server: "udp", args: pkt("inet-packet"),
			open: "socket(AF_INET, SOCK_PACKET) is a packet socket (__sock_create) that the raw socket rule does not catch"}.prove(t)
	})
	t.Run("packet-name-family-0", func(t *testing.T) {
		loopbackFrames(t)
		// --allow-raw, and the embedded default: loopback allowed, the
		// rest denied. A packet socket's send is an AF_PACKET destination
		// whatever its sockaddr_ll says; family 0 is no dissolve there.
		door{server: "udp", args: pkt("unspec"),
			wrap: func(p int) []string { return []string{"--allow-raw", "--deny", fmt.Sprintf("127.0.0.1:%d=EACCES", p)} },
			open: "a packet socket's sendto with sll_family 0 was decided as AF_UNSPEC (always allowed), but packet_snd never reads the family"}.prove(t)
	})
}

// TestRaw6UnspecName: with --allow-raw, an IPv6 raw socket's sendto to a
// name of family 0 goes to the IPv6 address in it (rawv6_sendmsg), so it
// must be decided as that address, not as a dissolve. The rule names no
// port: a raw datagram's name carries none (README).
func TestRaw6UnspecName(t *testing.T) {
	door{server: "udp6",
		args: func(p int) []string { return []string{"raw6-unspec", "::1", port(p)} },
		wrap: func(p int) []string { return []string{"--allow-raw", "--deny", "[::1]=EACCES", "--allow", "any"} },
		open: "sendto on an IPv6 raw socket with a name of family 0 was decided as AF_UNSPEC (always allowed), but the kernel sends to its IPv6 address"}.prove(t)
}

// TestUnspecifiedOnMappedSocket: "::" on an IPv6 socket bound to
// ::ffff:127.0.0.1 is connected by the kernel to 127.0.0.1.
func TestUnspecifiedOnMappedSocket(t *testing.T) {
	for _, kind := range []string{"tcp", "udp"} {
		t.Run(kind, door{server: kind,
			args: func(p int) []string { return []string{"connect6-bound", "::ffff:127.0.0.1", "::", port(p), kind} },
			open: "connect([::]:PORT) on an IPv6 socket bound to ::ffff:127.0.0.1 reaches 127.0.0.1:PORT, but was decided as [::1]"}.prove)
	}
}

// TestBindRace: another thread binds the socket between the decision of a
// connect to 0.0.0.0 and the connect: the kernel would connect to the new
// bound address.
func TestBindRace(t *testing.T) {
	needAttack(t)
	allowed := newServer(t, "tcp", "")
	denied := newServerAt(t, "tcp", "", fmt.Sprintf("127.0.0.5:%d", allowed.Port))
	a := []string{"bindrace", port(allowed.Port), "127.0.0.5", "3000"}
	nat := run(t, nil, a...)
	nd := denied.Hits()
	if !nat.reached() || nd == 0 {
		t.Fatalf("natively no connect to 0.0.0.0 reached the bound address:\n%s", nat.out)
	}
	wr := run(t, []string{"--deny", fmt.Sprintf("127.0.0.5:%d=EACCES", allowed.Port), "--allow", "any"}, a...)
	if d := denied.Hits() - nd; d > 0 || wr.reached() {
		t.Fatalf("OPEN DOOR: %d connects to 0.0.0.0 reached the address bound after the decision:\n%s", d, wr.out)
	}
	if !strings.Contains(wr.detail, "to_loopback=") || strings.Contains(wr.detail, "to_loopback=0 ") {
		t.Fatalf("wrapped, no connect reached the allowed server: the race never ran:\n%s", wr.out)
	}
}

// TestUnixPathAliases: a UNIX path rule bypassed through another name of
// the denied socket.
func TestUnixPathAliases(t *testing.T) {
	needAttack(t)
	dir := shortTempDir(t)
	deniedDir := mkdir(t, filepath.Join(dir, "d"), 0o755)
	allowedDir := mkdir(t, filepath.Join(dir, "a"), 0o777)
	sock := filepath.Join(deniedDir, "s")
	srv := newServer(t, "unix", sock)
	policyFlags := []string{"--deny", "unix:" + sock + "=EACCES", "--allow", "any"}
	prove := func(t *testing.T, a []string, flags []string, open string) {
		nat := run(t, nil, a...)
		hits := srv.Hits()
		if !nat.reached() || hits == 0 {
			if strings.Contains(nat.out, "unshare") {
				t.Skipf("no unprivileged user namespaces here: %s", nat.out)
			}
			t.Fatalf("the attack does not work natively:\n%s", nat.out)
		}
		wr := run(t, flags, a...)
		if wr.reached() || srv.Hits() > hits {
			t.Fatalf("OPEN DOOR: %s:\n%s", open, wr.out)
		}
	}
	t.Run("userns-mount", func(t *testing.T) {
		a := []string{"userns-mount", allowedDir, sock}
		prove(t, a, policyFlags, "in a user and mount namespace, the denied socket bind-mounted into an allowed directory was reached")
		// With --allow-userns the namespace is made, but the tree's
		// Landlock domain refuses mount.
		wr := run(t, append([]string{"--allow-userns"}, policyFlags...), a...)
		if wr.reached() {
			t.Fatalf("OPEN DOOR: with --allow-userns the mount went through: %s", wr.out)
		}
		t.Logf("with --allow-userns: %s", wr.out)
	})
	t.Run("hardlink", func(t *testing.T) {
		a := []string{"hardlink", allowedDir, sock}
		prove(t, a, policyFlags,
			"a hard link of the denied socket in an allowed directory was reached: the rule must hold for the name the socket was bound at")
		// Both names allowed: the link connects as natively.
		before := srv.Hits()
		ok := run(t, []string{"--deny", "unix:/nonexistent=EACCES", "--allow", "any"}, a...)
		if !ok.reached() || srv.Hits() != before+1 {
			t.Fatalf("a hard link whose both names are allowed did not connect:\n%s", ok.out)
		}
	})
}

// victim starts `attack victim IP PORT` outside connvisor and returns its
// pid, socket fd, sockaddr address and syscall gadget.
func victim(t *testing.T, p int) []string {
	t.Helper()
	cmd := exec.Command(attackBin, "victim", "127.0.0.1", port(p), nobody)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "VICTIM" {
		t.Fatalf("victim said %q", line)
	}
	return f[1:]
}

// nobody is the uid both sides of TestOutsideProcesses run as: with no
// capabilities, only the uid lets one ptrace the other natively.
const nobody = "65534"

// TestOutsideProcesses: a wrapped program reaches into a process of the
// same user outside its tree (the README's advice, "wrap hostile programs
// as an unprivileged user", walks into this). Both run as nobody: a root
// command loses CAP_SYS_PTRACE and could not ptrace a root process anyway.
func TestOutsideProcesses(t *testing.T) {
	needAttack(t)
	if b, _ := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); strings.TrimSpace(string(b)) != "" && strings.TrimSpace(string(b)) != "0" {
		t.Skipf("yama ptrace_scope %s refuses ptrace of non-descendants already", strings.TrimSpace(string(b)))
	}
	t.Run("ptrace", func(t *testing.T) {
		srv := newServer(t, "tcp", "")
		v := victim(t, srv.Port)
		nat := run(t, nil, "ptrace-pid", v[0], v[1], v[2], v[3], nobody)
		hits := srv.Hits()
		if !nat.reached() || hits == 0 {
			t.Fatalf("natively the injected connect did not reach:\n%s", nat.out)
		}
		v = victim(t, srv.Port)
		wr := run(t, denyFlags(srv.Port), "ptrace-pid", v[0], v[1], v[2], v[3], nobody)
		if wr.reached() || srv.Hits() > hits {
			t.Fatalf("OPEN DOOR: the wrapped program ptraced a process outside its tree and made it connect:\n%s", wr.out)
		}
		// --allow-ptrace gives this up, as documented.
		v = victim(t, srv.Port)
		opt := run(t, append([]string{"--allow-ptrace"}, denyFlags(srv.Port)...), "ptrace-pid", v[0], v[1], v[2], v[3], nobody)
		t.Logf("with --allow-ptrace (documented opt-out): %s", strings.TrimSpace(opt.out))
	})
	t.Run("pidfd_getfd", func(t *testing.T) {
		srv := newServer(t, "tcp", "")
		v := victim(t, srv.Port)
		if nat := run(t, nil, "getfd-pid", v[0], v[1], nobody); !nat.reached() {
			t.Fatalf("natively pidfd_getfd of an outside process failed:\n%s", nat.out)
		}
		if wr := run(t, denyFlags(srv.Port), "getfd-pid", v[0], v[1], nobody); wr.reached() {
			t.Fatalf("OPEN DOOR: the wrapped program took a socket of a process outside its tree:\n%s", wr.out)
		}
	})
}

// TestExplicitDefault: --default replaces the embedded policy (its
// loopback and UNIX allows do not stay behind the flag rules), and a deny
// default leaves netlink to the kernel alone (getifaddrs).
func TestExplicitDefault(t *testing.T) {
	needAttack(t)
	srv := newServer(t, "tcp", "")
	a := []string{"connect", "127.0.0.1", port(srv.Port)}
	if nat := run(t, nil, a...); !nat.reached() {
		t.Fatalf("natively: %s", nat.out)
	}
	hits := srv.Hits()
	wr := run(t, []string{"--default", "deny", "--allow", "10.0.0.1:443"}, a...)
	if wr.reached() || srv.Hits() > hits {
		t.Fatalf("OPEN DOOR: --default deny --allow 10.0.0.1:443 still lets loopback through (the embedded default stayed behind the flags):\n%s", wr.out)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip(8) to query interfaces over netlink")
	}
	cmd := exec.Command(bins.Connvisor, "run", "-q", "--default", "deny", "--", ip, "-o", "addr", "show", "dev", "lo")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "127.0.0.1") {
		t.Fatalf("under --default deny, ip addr (netlink to the kernel) failed: %v\n%s", err, out)
	}
}
