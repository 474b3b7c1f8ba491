package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// BenchmarkConnectLatency measures, in one run, what supervision adds to a
// connect: the C target times N connects itself (so process start-up is not
// counted), natively and under connvisor, for
//   - UDP to 127.0.0.1, allowed: the supervisor connects the duplicate;
//   - UDP to 127.0.0.1, denied with EPERM: answered from the policy alone;
//   - TCP to a listening 127.0.0.1 port, allowed (socket+connect+close per
//     round; a blocking stream connect is held off the notification loop);
//   - TCP denied.
//
// Natively every destination is reachable, so "native" is the cost of the
// real connect in each case; a denied TCP connect skips the handshake, so
// wrapped it can cost less than natively. Run it with
//
//	go test ./test/integration -run '^$' -bench ConnectLatency -benchtime 1x -v
//
// CONNVISOR_BENCH_CONNECTS sets N for UDP (default 20000; TCP uses N/10).
func BenchmarkConnectLatency(b *testing.B) {
	prog := connector(b)
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("CONNVISOR_BENCH_CONNECTS")); err == nil && v > 0 {
		n = v
	}
	udpOK, udpDenied := newServer(b, "udp4"), newServer(b, "udp4")
	tcpOK, tcpDenied := newServer(b, "tcp4"), newServer(b, "tcp4")
	udpArgs := []string{prog, "--bench", strconv.Itoa(n)}
	udpArgs = append(append(udpArgs, udpOK.spec()...), udpDenied.spec()...)
	tcpArgs := []string{prog, "--bench", strconv.Itoa(n / 10)}
	tcpArgs = append(append(tcpArgs, tcpOK.spec()...), tcpDenied.spec()...)
	deny := []string{"--deny", ruleFor(udpDenied), "--deny", ruleFor(tcpDenied)}
	logFile := filepath.Join(b.TempDir(), "log.json")

	type variant struct {
		name  string
		flags []string // nil: native
	}
	variants := []variant{
		{"native", nil},
		{"wrapped", append([]string{"-q"}, deny...)},
		{"wrapped+jsonlog", append([]string{"--log-format", "json", "--log-file", logFile}, deny...)},
	}
	// sum[variant][dest] in ns per connect, over b.N rounds
	sum := map[string]map[string]float64{}
	for i := 0; i < b.N; i++ {
		for _, v := range variants {
			if sum[v.name] == nil {
				sum[v.name] = map[string]float64{}
			}
			for _, args := range [][]string{udpArgs, tcpArgs} {
				var r result
				if v.flags == nil {
					r = run(b, args[0], args[1:]...)
				} else {
					r = wrapped(b, v.flags, args...)
				}
				for dest, ns := range benchLines(b, r, v.flags != nil) {
					sum[v.name][dest] += ns
				}
			}
			os.Remove(logFile)
		}
	}
	us := func(v, dest string) float64 { return sum[v][dest] / float64(b.N) / 1000 }
	for _, c := range []struct {
		label, dest, nativeDest string
	}{
		{"udp-allowed", "udp4 " + udpOK.where, "udp4 " + udpOK.where},
		{"udp-denied", "udp4 " + udpDenied.where, "udp4 " + udpDenied.where},
		{"tcp-allowed", "tcp4 " + tcpOK.where, "tcp4 " + tcpOK.where},
		{"tcp-denied", "tcp4 " + tcpDenied.where, "tcp4 " + tcpDenied.where},
	} {
		native, wr, logged := us("native", c.nativeDest), us("wrapped", c.dest), us("wrapped+jsonlog", c.dest)
		b.ReportMetric(native, c.label+"-native-µs")
		b.ReportMetric(wr, c.label+"-wrapped-µs")
		b.ReportMetric(wr-native, c.label+"-added-µs")
		b.Logf("%-12s native %7.2f µs  wrapped %7.2f µs (+%6.2f, x%5.1f)  wrapped with JSON log %7.2f µs",
			c.label, native, wr, wr-native, wr/native, logged)
	}
}

var benchRE = regexp.MustCompile(`(?m)^bench (\S+ \S+) n=\d+ ns_per_connect=(\d+) result=(\S+)$`)

// benchLines returns ns per connect by destination, and checks that the
// wrapped denied destinations really were denied.
func benchLines(b *testing.B, r result, wrapped bool) map[string]float64 {
	b.Helper()
	out := map[string]float64{}
	for _, m := range benchRE.FindAllStringSubmatch(r.Stdout, -1) {
		ns, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = ns
		if m[3] != "ok" && m[3] != "EPERM" || !wrapped && m[3] != "ok" {
			b.Fatalf("%s: result %s\n%v", m[1], m[3], r)
		}
	}
	if len(out) != 2 || r.Code != 0 {
		b.Fatalf("want two bench lines and exit 0:\n%v", r)
	}
	return out
}
