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
