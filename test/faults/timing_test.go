package faults

import (
	"os"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// Bounds on held connects. A held connect must last at least its delay;
// the upper bounds only catch a hold that ignores its delay entirely, so
// they are loose for two shared cores.
const (
	delayMS = 300
	slackMS = 700
	// promptMS bounds a call that must not be held (a nonblocking connect
	// returning EINPROGRESS) or a prompt answer to a signal.
	promptMS = 150
)

func assertHeld(t *testing.T, a attempt, key string, atLeast int) {
	t.Helper()
	if ms := a.ms(t, key); ms < atLeast || ms > atLeast+slackMS {
		t.Errorf("%s=%d ms, want %d..%d: %v", key, ms, atLeast, atLeast+slackMS, a)
	}
}

func assertPrompt(t *testing.T, a attempt, key string) {
	t.Helper()
	if ms := a.ms(t, key); ms > promptMS {
		t.Errorf("%s=%d ms, want at most %d: %v", key, ms, promptMS, a)
	}
}

// delay= on allow makes a slow but successful connect: the blocking call
// returns 0 after the delay, connected to the real server.
func TestAllowDelay(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	file := t.TempDir() + "/slow.policy"
	if err := os.WriteFile(file, []byte("allow tcp 127.0.0.1 port "+port(srv.Port)+" delay=300ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, flags := range map[string][]string{
		"policy file": {"-q", "--policy", file},
		"compact":     {"-q", "--allow", dest(srv.Port) + ":delay=300ms"},
	} {
		t.Run(name, func(t *testing.T) {
			before := srv.Accepted()
			as, _ := faultRun(t, flags, "-p", port(srv.Port), "-n", "2")
			for _, a := range as {
				if a.result() != "ok" || a["peer"] != dest(srv.Port) {
					t.Errorf("want a successful connect to %s: %v", dest(srv.Port), a)
				}
				assertHeld(t, a, "ms", delayMS)
			}
			if got := srv.WaitAccepted(before+2) - before; got != 2 {
				t.Errorf("server accepted %d connections, want 2", got)
			}
		})
	}
}

// A slow network does not make a nonblocking connect block: natively it
// returns EINPROGRESS at once and the socket becomes writable after the
// round trip. A delayed allow must look the same, or an event loop stalls
// for the whole delay.
func TestAllowDelayNonblocking(t *testing.T) {
	// What a real slow network shows a nonblocking socket (EINPROGRESS at
	// once, writable after the delay) needs the socket to stay in SYN_SENT
	// toward the real destination for the delay. connvisor can hold it in
	// SYN_SENT only toward its tarpit, and moving it from there to the real
	// destination (a disconnect) raises ECONNRESET for an instant that the
	// program could read. So the connect call itself is held for the delay
	// instead: slow, but the event loop waits. Use a fail rule with delay=
	// for an asynchronous failure.
	t.Skip("known limitation: delay= on allow holds a nonblocking connect call for the delay (see README, fault injection)")
	needC(t)
	srv := testutil.Listen(t)
	as, _ := faultRun(t, []string{"-q", "--allow", dest(srv.Port) + ":delay=300ms"},
		"-m", "nonblock", "-e", "100", "-p", port(srv.Port), "-n", "2")
	for _, a := range as {
		if a["errno"] != "EINPROGRESS" {
			t.Errorf("connect: want EINPROGRESS: %v", a)
		}
		assertPrompt(t, a, "cms")
		if a["early"] != "timeout" {
			t.Errorf("poll during the delay: want no event (timeout), got %s: %v", a["early"], a)
		}
		if a["revents"] != "POLLOUT" || a["so_error"] != "0" || a["peer"] != dest(srv.Port) {
			t.Errorf("after the delay: want POLLOUT, SO_ERROR 0, connected to %s: %v", dest(srv.Port), a)
		}
		assertHeld(t, a, "ms", delayMS)
	}
}

// An injected errno on a blocking socket is returned by connect itself,
// after the delay.
func TestErrnoBlockingAfterDelay(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	for _, errno := range []string{"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT", "ECONNRESET", "EADDRNOTAVAIL", "EACCES"} {
		t.Run(errno, func(t *testing.T) {
			as, _ := faultRun(t, []string{"-q", "--fail", dest(srv.Port) + "=" + errno + ":delay=300ms"},
				"-p", port(srv.Port))
			a := as[0]
			if a["ret"] != "-1" || a["errno"] != errno || a["peer"] != "ENOTCONN" {
				t.Errorf("want -1 %s and no peer: %v", errno, a)
			}
			assertHeld(t, a, "ms", delayMS)
		})
	}
	if n := srv.WaitAccepted(0); n != 0 {
		t.Errorf("the server accepted %d connections; every connect was failed", n)
	}
}

// nativeRefused is what a real refused nonblocking connect shows on this
// kernel: connect to a loopback port nothing listens on.
func nativeRefused(t *testing.T, v6 bool) attempt {
	t.Helper()
	args := []string{cTarget, "-m", "nonblock", "-p", port(testutil.FreePort(t))}
	if v6 {
		args = append(args, "-6")
	}
	as, _ := parseLines(execute(t, args...).Stdout)
	if len(as) != 1 || as[0]["so_error"] != "ECONNREFUSED" && as[0]["errno"] != "ECONNREFUSED" {
		t.Fatalf("native connect to a closed port was not refused: %v", as)
	}
	return as[0]
}

// An injected errno on a nonblocking TCP socket arrives as a real failure
// does: connect returns EINPROGRESS at once, poll shows nothing during the
// delay and then what a real failed connect shows, SO_ERROR is the errno
// and the socket has no peer.
func TestErrnoNonblocking(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	for _, fam := range []struct {
		name, host string
		args       []string
		v6         bool
	}{
		{"ipv4", "127.0.0.1", nil, false},
		{"ipv6", "[::1]", []string{"-6"}, true},
	} {
		native := nativeRefused(t, fam.v6)
		if native["errno"] != "EINPROGRESS" {
			t.Fatalf("%s: a native refused connect on loopback did not go through EINPROGRESS: %v", fam.name, native)
		}
		// Every failure of a connect in SYN_SENT ends in tcp_done, so
		// every errno shows the events of a real refusal.
		wantRevents := native["revents"]
		for _, errno := range []string{"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT", "ECONNRESET"} {
			t.Run(fam.name+"/"+errno, func(t *testing.T) {
				args := append([]string{"-m", "nonblock", "-e", "150", "-p", port(srv.Port), "-n", "3"}, fam.args...)
				as, _ := faultRun(t, []string{"-q", "--fail", fam.host + ":" + port(srv.Port) + "=" + errno + ":delay=300ms"}, args...)
				held := delayMS
				if !privileged() {
					switch errno {
					case "ENETUNREACH", "EHOSTUNREACH":
						// No ICMP without CAP_NET_RAW: connect itself
						// returns the errno after the delay, as the
						// start-up warning says.
						for _, a := range as {
							if a["ret"] != "-1" || a["errno"] != errno || a["peer"] != "ENOTCONN" {
								t.Errorf("unprivileged: want connect to return %s itself: %v", errno, a)
							}
							assertHeld(t, a, "cms", delayMS)
						}
						return
					case "ECONNREFUSED", "ETIMEDOUT":
						// Delivered by the first SYN retransmission,
						// 1 s after the connect.
						held = 1000
					}
				}
				for _, a := range as {
					if a["ret"] != "-1" || a["errno"] != "EINPROGRESS" {
						t.Errorf("connect: want -1 EINPROGRESS: %v", a)
					}
					assertPrompt(t, a, "cms")
					if a["early"] != "timeout" {
						t.Errorf("poll during the delay: want no event (timeout), got %s: %v", a["early"], a)
					}
					// tcp_poll reads the state before sk_err, so a poll that
					// runs while the kernel fails the connect (sk_err set, the
					// state not yet CLOSE) shows POLLERR alone: a transient a
					// real ICMP error can produce too. SO_ERROR is the same.
					if a["revents"] != wantRevents && a["revents"] != "POLLERR" {
						t.Errorf("poll after the delay: got %s, a real refused connect shows %s: %v", a["revents"], wantRevents, a)
					}
					if a["so_error"] != errno || a["peer"] != "ENOTCONN" {
						t.Errorf("want SO_ERROR %s and getpeername ENOTCONN: %v", errno, a)
					}
					assertHeld(t, a, "ms", held)
				}
			})
		}
	}
	if n := srv.WaitAccepted(0); n != 0 {
		t.Errorf("the server accepted %d connections; every connect was failed", n)
	}
}

// Many refused nonblocking connects in a row, each compared with a real
// refusal: the first wake-up of a poller must already show the complete
// events (natively tcp_reset closes the socket before it reports the
// error, so a waiting poller never sees POLLERR alone).
func TestRefusedNonblockingMatchesNative(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	native := nativeRefused(t, false)
	n := "40"
	if !privileged() {
		n = "5" // each refusal waits for the SYN retransmission at 1 s
	}
	as, _ := faultRun(t, []string{"-q", "--fail", dest(srv.Port) + "=ECONNREFUSED:delay=30ms"},
		"-m", "nonblock", "-e", "10", "-p", port(srv.Port), "-n", n)
	var odd []string
	for _, a := range as {
		// POLLERR alone: a poll that runs while the kernel fails the
		// connect (tcp_done_with_error sets sk_err before the state is
		// CLOSE; tcp_poll reads the state first). Any asynchronous failure
		// can show it; the native refusal here is synchronous (loopback
		// answers within the connect call), so it never does. SO_ERROR
		// must match all the same: it is set before either is seen.
		revents := a["revents"] == native["revents"] || a["revents"] == "POLLERR"
		if a["errno"] != native["errno"] || !revents || a["so_error"] != "ECONNREFUSED" || a["peer"] != native["peer"] {
			odd = append(odd, a.String())
		}
	}
	if len(odd) > 0 {
		t.Errorf("%d of %d refused connects differ from the native %v:\n%s", len(odd), len(as), native, strings.Join(odd, "\n"))
	}
}

// blackhole: the connect never completes, as toward a host that drops
// SYNs.
func TestBlackhole(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	bh := dest(srv.Port) + "=blackhole"
	t.Run("nonblocking stays in progress", func(t *testing.T) {
		as, _ := faultRun(t, []string{"-q", "--fail", bh}, "-m", "nonblock", "-w", "500", "-p", port(srv.Port))
		a := as[0]
		if a["errno"] != "EINPROGRESS" || a["revents"] != "timeout" || a["so_error"] != "0" || a["peer"] != "ENOTCONN" {
			t.Errorf("want EINPROGRESS, no poll event in 500 ms, SO_ERROR 0, no peer: %v", a)
		}
		assertPrompt(t, a, "cms")
		assertHeld(t, a, "ms", 500)
	})
	t.Run("blocking with timeout= gives ETIMEDOUT", func(t *testing.T) {
		as, _ := faultRun(t, []string{"-q", "--fail", bh + ":timeout=300ms"}, "-p", port(srv.Port))
		a := as[0]
		if a["errno"] != "ETIMEDOUT" || a["peer"] != "ENOTCONN" {
			t.Errorf("want ETIMEDOUT, no peer: %v", a)
		}
		assertHeld(t, a, "ms", 300)
	})
	t.Run("blocking with SO_SNDTIMEO gives EINPROGRESS", func(t *testing.T) {
		// inet_stream_connect returns EINPROGRESS when the socket's send
		// timeout expires before the handshake completes.
		as, _ := faultRun(t, []string{"-q", "--fail", bh}, "-t", "300", "-p", port(srv.Port))
		a := as[0]
		if a["errno"] != "EINPROGRESS" || a["peer"] != "ENOTCONN" {
			t.Errorf("want EINPROGRESS, no peer: %v", a)
		}
		assertHeld(t, a, "ms", 300)
	})
	t.Run("SO_SNDTIMEO shorter than timeout= wins", func(t *testing.T) {
		// The socket's send timeout bounds a blocking connect whatever
		// the network does: 300 ms, not the rule's 3 s.
		as, _ := faultRun(t, []string{"-q", "--fail", bh + ":timeout=3s"}, "-t", "300", "-p", port(srv.Port))
		a := as[0]
		if a["errno"] != "EINPROGRESS" {
			t.Errorf("want EINPROGRESS when SO_SNDTIMEO (300 ms) expires first: %v", a)
		}
		assertHeld(t, a, "ms", 300)
	})
	if n := srv.WaitAccepted(0); n != 0 {
		t.Errorf("the server accepted %d connections; every connect was blackholed", n)
	}
}

// A failure (or a handshake) that arrives after the socket's SO_SNDTIMEO
// is never seen by a blocking connect: natively it returns EINPROGRESS
// when the send timeout expires (inet_stream_connect).
func TestDelayBeyondSndTimeo(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	for name, rule := range map[string]string{
		"fail":  "--fail=" + dest(srv.Port) + "=ECONNREFUSED:delay=3s",
		"allow": "--allow=" + dest(srv.Port) + ":delay=3s",
	} {
		t.Run(name, func(t *testing.T) {
			as, _ := faultRun(t, []string{"-q", rule}, "-t", "300", "-p", port(srv.Port))
			a := as[0]
			if a["errno"] != "EINPROGRESS" {
				t.Errorf("want EINPROGRESS when SO_SNDTIMEO (300 ms) expires before the 3 s delay: %v", a)
			}
			assertHeld(t, a, "ms", 300)
		})
	}
}

// A held connect on a blocking socket stays interruptible: SIGALRM with a
// handler installed without SA_RESTART ends it with EINTR at once.
func TestHeldConnectInterrupted(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	for name, rule := range map[string]string{
		"blackhole":        "--fail=" + dest(srv.Port) + "=blackhole",
		"long fault delay": "--fail=" + dest(srv.Port) + "=ECONNREFUSED:delay=10s",
		"long allow delay": "--allow=" + dest(srv.Port) + ":delay=10s",
	} {
		t.Run(name, func(t *testing.T) {
			as, r := faultRun(t, []string{"-q", rule}, "-a", "200", "-p", port(srv.Port))
			a := as[0]
			if a["errno"] != "EINTR" || a["peer"] != "ENOTCONN" {
				t.Errorf("want EINTR and no peer: %v", a)
			}
			if ms := a.ms(t, "ms"); ms < 190 || ms > 200+promptMS { // itimer and ms truncation
				t.Errorf("EINTR after %d ms, want 190..%d: %v", ms, 200+promptMS, a)
			}
			// Nothing keeps the tree waiting for the abandoned connect.
			if r.Elapsed.Seconds() > 5 {
				t.Errorf("connvisor took %v to exit after the interrupted connect", r.Elapsed)
			}
		})
	}
}
