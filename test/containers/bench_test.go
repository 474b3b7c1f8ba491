package containers

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
)

// BenchmarkStart times the start and end of a `sh -c true` container, with
// no seccomp profile (plain) and under the agent (the profile's filter and
// the hand-off). Run: go test ./test/containers -run '^$' -bench Start
func BenchmarkStart(b *testing.B) {
	for _, name := range runtimes {
		for _, agent := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/agent=%v", name, agent), func(b *testing.B) {
				rt := newRuntime(b, name)
				dir := b.TempDir()
				var args []string
				if agent {
					writePolicy(b, dir, "p.policy", "allow any\n")
					a := startAgent(b, dir, "--policy-dir", dir, "-q")
					args = []string{"--listener", a.socket, "--metadata", "p"}
				}
				c := newContainer(b, rt, "true", nil, args...)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					id := fmt.Sprintf("%s-%d", c.id, i)
					if out, err := rt.cmd("run", "--bundle", c.bundle, id).CombinedOutput(); err != nil {
						b.Fatalf("%s run: %v\n%s", name, err, out)
					}
					rt.cmd("delete", "--force", id).Run()
				}
			})
		}
	}
}

// BenchmarkConnect reports the cost of one blocking TCP connect to a
// loopback server inside a container (test/targets/connector.c, static),
// without a profile and under the agent (an allowing policy that is not
// allow-all, so every connect is decided and made by the agent).
// Run: go test ./test/containers -run '^$' -bench Connect -benchtime 3x
func BenchmarkConnect(b *testing.B) {
	connector := staticConnector(b)
	perConnect := regexp.MustCompile(`ns_per_connect=(\d+)`)
	const connects = 2000
	for _, name := range runtimes {
		for _, agent := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/agent=%v", name, agent), func(b *testing.B) {
				rt := newRuntime(b, name)
				dir := b.TempDir()
				s := newServer(b)
				var args []string
				if agent {
					writePolicy(b, dir, "p.policy", "default deny\nallow tcp 127.0.0.0/8\n")
					a := startAgent(b, dir, "--policy-dir", dir, "-q")
					args = []string{"--listener", a.socket, "--metadata", "p"}
				}
				c := newContainer(b, rt, fmt.Sprintf("/bin/connector --bench %d tcp4 127.0.0.1:%d", connects, s.Port), nil, args...)
				c.install(b, connector, "/bin/connector")
				var total float64
				for i := 0; i < b.N; i++ {
					id := fmt.Sprintf("%s-%d", c.id, i)
					out, err := rt.cmd("run", "--bundle", c.bundle, id).CombinedOutput()
					rt.cmd("delete", "--force", id).Run()
					m := perConnect.FindSubmatch(out)
					if err != nil || m == nil {
						b.Fatalf("%s run: %v\n%s", name, err, out)
					}
					ns, _ := strconv.ParseFloat(string(m[1]), 64)
					total += ns
				}
				b.ReportMetric(total/float64(b.N), "ns/connect")
			})
		}
	}
}
