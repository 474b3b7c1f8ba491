package learn_test

import (
	"fmt"
	"time"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/policy/learn"
)

// A Recorder fed with what a run connected to writes the policy that
// allows exactly that (connvisor learn feeds it from Cmd.OnDecision).
func ExampleRecorder_Write() {
	rec := learn.NewRecorder(0)
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for i, dst := range []string{"tcp 10.20.3.4:5432", "tcp 10.20.3.4:5433", "udp 10.0.0.53:53", "unix /tmp/tmp.k3j2/app.sock"} {
		d, _ := policy.ParseDest(dst)
		rec.Add(learn.Conn{Dest: d, Exe: "/usr/bin/svc", Time: at.Add(time.Duration(i) * time.Second)})
	}
	fmt.Print(string(rec.Write(learn.Options{Command: []string{"svc", "--once"}, NoDates: true})))
	// Output:
	// # connvisor policy learned from a run of:
	// #   svc --once
	// # by connvisor learn. Each rule says how often the run used it and by
	// # which executables.
	// # Review it (connvisor check FILE), try it without breaking anything
	// # (connvisor run --audit --policy FILE -- ...), then enforce it.
	//
	// allow tcp 10.20.3.4 port 5432-5433  # 2 connects; by /usr/bin/svc
	// allow udp 10.0.0.53 port 53         # 1 connect; by /usr/bin/svc
	// allow unix /tmp/*/app.sock          # 1 connect; by /usr/bin/svc
	//
	// default deny errno=EACCES
}

// Connects whose address the run's own DNS answers named (the decision's
// Host, via policy.ViaAnswer) are learned by name: the addresses behind a
// name change, the name does not.
func ExampleRecorder_Write_hosts() {
	rec := learn.NewRecorder(0)
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for i, c := range []struct{ dst, host string }{
		{"udp 127.0.0.53:53", ""},
		{"tcp 93.184.216.34:443", "api.example.com"},
		{"tcp 93.184.216.35:443", "api.example.com"},
		{"tcp 10.20.3.4:5432", "db.corp.example"},
		{"tcp 192.0.2.7:8080", ""},
	} {
		d, _ := policy.ParseDest(c.dst)
		conn := learn.Conn{Dest: d, Exe: "/usr/bin/svc", Time: at.Add(time.Duration(i) * time.Second)}
		if c.host != "" {
			conn.Host, conn.HostVia = c.host, policy.ViaAnswer
		}
		rec.Add(conn)
	}
	fmt.Print(string(rec.Write(learn.Options{Command: []string{"svc"}, NoDates: true})))
	// Output:
	// # connvisor policy learned from a run of:
	// #   svc
	// # by connvisor learn. Each rule says how often the run used it and by
	// # which executables.
	// # Review it (connvisor check FILE), try it without breaking anything
	// # (connvisor run --audit --policy FILE -- ...), then enforce it.
	// # Host names are those the run's own DNS answers gave: connvisor matches
	// # them through the program's answers (as root), else through the addresses
	// # they resolve to at load (--hosts=never writes addresses instead).
	//
	// allow tcp api.example.com port 443  # 2 connects; by /usr/bin/svc; seen at 93.184.216.34, 93.184.216.35
	// allow tcp db.corp.example allow-private port 5432  # 1 connect; by /usr/bin/svc; seen at 10.20.3.4
	// allow tcp 192.0.2.7 port 8080       # 1 connect; by /usr/bin/svc
	// allow udp 127.0.0.53 port 53        # 1 connect; by /usr/bin/svc
	//
	// default deny errno=EACCES
}
