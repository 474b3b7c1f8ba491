package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/connvisor/connvisor/control"
)

const ctlUsageFormat = `connvisor ctl drives a running connvisor run --control PATH.

Usage:
  connvisor ctl [flags] policy             print the rules in force, with their ids
  connvisor ctl [flags] policy FILE|-      replace the policy (file language; - reads stdin)
  connvisor ctl [flags] rules              the rules in force, with ids and match counts
  connvisor ctl [flags] add RULE...        add a rule in front (--after ID: after that rule); prints its id
  connvisor ctl [flags] rm ID              remove a rule
  connvisor ctl [flags] stats              per destination: seen, allowed, denied, failed, latency
  connvisor ctl [flags] reset              zero the counters, restart fault schedules and time windows
  connvisor ctl [flags] decisions          the recent decisions (--since N, --limit N)

Flags:
%s
Examples:
  connvisor ctl --control /tmp/cv.sock add fail tcp 127.0.0.1 port 5432 errno=ECONNREFUSED for=10s
  connvisor ctl --control /tmp/cv.sock add 'fail *:6379=blackhole:every=30s,for=5s'
  connvisor ctl --control /tmp/cv.sock --json stats
`

func ctlCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cf, rest, err := parseCtlFlags(args)
	if errors.Is(err, errHelp) {
		fmt.Fprintf(stdout, ctlUsageFormat, flagUsage(ctlFlagTable(&ctlFlags{})))
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "connvisor ctl: %v\n", err)
		return exitUsage
	}
	c := control.NewClient(cf.control)
	action, params := rest[0], rest[1:]
	var (
		method, path, ctype string
		body                []byte
		show                func([]byte) error
	)
	switch action {
	case "policy":
		switch len(params) {
		case 0:
			method, path, show = "GET", "/v1/policy", showPolicy(stdout)
		case 1:
			if params[0] == "-" {
				body, err = io.ReadAll(stdin)
			} else {
				body, err = os.ReadFile(params[0])
			}
			if err != nil {
				fmt.Fprintf(stderr, "connvisor ctl: %v\n", err)
				return exitUsage
			}
			method, path, ctype, show = "PUT", "/v1/policy", "text/plain", showPolicy(stdout)
		default:
			fmt.Fprintln(stderr, "connvisor ctl: policy takes at most one FILE (or - for stdin)")
			return exitUsage
		}
	case "rules":
		method, path, show = "GET", "/v1/policy", showRules(stdout)
	case "add":
		if len(params) == 0 {
			fmt.Fprintln(stderr, "connvisor ctl: add needs a rule, like: add fail 127.0.0.1:5432=ECONNREFUSED:for=10s")
			return exitUsage
		}
		req := control.AddRule{Rule: strings.Join(params, " ")}
		if cf.after >= 0 {
			after := uint64(cf.after)
			req.After = &after
		}
		body, _ = json.Marshal(req)
		method, path, ctype = "POST", "/v1/rules", "application/json"
		show = func(b []byte) error {
			var r control.RuleInfo
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d\t%s\n", r.ID, r.Rule)
			return nil
		}
	case "rm":
		if len(params) != 1 {
			fmt.Fprintln(stderr, "connvisor ctl: rm takes one rule id (see connvisor ctl rules)")
			return exitUsage
		}
		if _, err := strconv.ParseUint(params[0], 10, 64); err != nil {
			fmt.Fprintf(stderr, "connvisor ctl: rm %q: expected a rule id (see connvisor ctl rules)\n", params[0])
			return exitUsage
		}
		method, path = "DELETE", "/v1/rules/"+params[0]
		show = func([]byte) error { fmt.Fprintf(stdout, "removed %s\n", params[0]); return nil }
	case "stats":
		method, path, show = "GET", "/v1/stats", showStats(stdout)
	case "reset":
		method, path = "POST", "/v1/reset"
		show = func([]byte) error { fmt.Fprintln(stdout, "counters and schedules reset"); return nil }
	case "decisions":
		path = "/v1/decisions?since=" + strconv.FormatUint(cf.since, 10)
		if cf.limit > 0 {
			path += "&limit=" + strconv.Itoa(cf.limit)
		}
		method, show = "GET", showDecisions(stdout)
	default:
		fmt.Fprintf(stderr, "connvisor ctl: unknown action %q (expected policy, rules, add, rm, stats, reset or decisions)\n", action)
		return exitUsage
	}
	if len(params) > 0 && (action == "rules" || action == "stats" || action == "reset" || action == "decisions") {
		fmt.Fprintf(stderr, "connvisor ctl: %s takes no arguments\n", action)
		return exitUsage
	}
	code, out, err := c.Do(method, path, ctype, body)
	if err != nil {
		fmt.Fprintf(stderr, "connvisor ctl: %v (is connvisor run --control %s running?)\n", err, cf.control)
		return 1
	}
	if code >= 300 {
		var e control.APIError
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			fmt.Fprintf(stderr, "connvisor ctl: %s (HTTP %d)\n", e.Error, code)
		} else {
			fmt.Fprintf(stderr, "connvisor ctl: HTTP %d: %s\n", code, bytes.TrimSpace(out))
		}
		return 1
	}
	if cf.json {
		stdout.Write(out)
		return 0
	}
	if err := show(out); err != nil {
		fmt.Fprintf(stderr, "connvisor ctl: unexpected answer: %v\n", err)
		return 1
	}
	return 0
}

func showPolicy(w io.Writer) func([]byte) error {
	return func(b []byte) error {
		var p control.PolicyInfo
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		_, err := io.WriteString(w, p.Text)
		return err
	}
}

func showRules(w io.Writer) func([]byte) error {
	return func(b []byte) error {
		var p control.PolicyInfo
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORIGIN\tMATCHES\tACTIVE\tRULE")
		for _, r := range p.Rules {
			active := "yes"
			if !r.Active {
				active = "no"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", r.ID, r.Origin, r.Matches, active, r.Rule)
		}
		fmt.Fprintf(tw, "-\t-\t-\t-\t%s\n", p.Default)
		return tw.Flush()
	}
}

func showStats(w io.Writer) func([]byte) error {
	return func(b []byte) error {
		var s control.Stats
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "destination\tseen\tallowed\tdenied\tfailed\tp50\tp90\tp99\t")
		us := func(v float64) time.Duration { return time.Duration(v * 1e3).Round(time.Microsecond) }
		for _, d := range s.Destinations {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t%v\t%v\t\n", d.Dest, d.Seen, d.Allowed, d.Denied, d.Failed, us(d.P50US), us(d.P90US), us(d.P99US))
		}
		return tw.Flush()
	}
}

func showDecisions(w io.Writer) func([]byte) error {
	return func(b []byte) error {
		var d control.Decisions
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if d.Dropped > 0 {
			fmt.Fprintf(w, "# %d older decisions are no longer kept\n", d.Dropped)
		}
		for _, e := range d.Decisions {
			res := e.Errno
			if res == "" {
				res = "ok"
			}
			if e.Injected != "" {
				res += " (injected " + e.Injected + ")"
			}
			fmt.Fprintf(w, "%d %s pid=%d %s %s %s rule=%s %s %.0fµs\n", e.Seq, e.Time.Format("15:04:05.000"), e.Pid, e.Syscall,
				e.Dest, e.Decision, e.Rule, res, e.LatencyUS)
		}
		fmt.Fprintf(w, "# next: --since %d\n", d.Next)
		return nil
	}
}
