package faults

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// summaryLine finds a destination's line in --summary's table and returns
// seen, allowed, denied, failed.
func summaryLine(t *testing.T, stderr, destination string) (counts [4]int, ok bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(destination) + `\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s`)
	m := re.FindStringSubmatch(stderr)
	if m == nil {
		return counts, false
	}
	for i := range counts {
		counts[i], _ = strconv.Atoi(m[i+1])
	}
	return counts, true
}

// when= counts across the whole process tree: four children connecting
// five times each, concurrently, under when=1..10 see exactly ten refusals
// between them.
func TestScheduleSharedAcrossTree(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	as, r := faultRun(t, []string{"-q", "--summary", "--fail", dest(srv.Port) + "=ECONNREFUSED:when=1..10"},
		"-f", "4", "-n", "5", "-p", port(srv.Port))
	if len(as) != 20 {
		t.Fatalf("want 20 attempts from 4 children, got %d:\n%s", len(as), r.Stdout)
	}
	refused, ok, children := 0, 0, map[string]bool{}
	for _, a := range as {
		children[a["c"]] = true
		switch a.result() {
		case "ECONNREFUSED":
			refused++
		case "ok":
			ok++
		default:
			t.Errorf("unexpected result: %v", a)
		}
	}
	if len(children) != 4 {
		t.Errorf("lines from %d children, want 4", len(children))
	}
	if refused != 10 || ok != 10 {
		t.Errorf("the children saw %d refused and %d ok, want 10 and 10:\n%s", refused, ok, r.Stdout)
	}
	c, found := summaryLine(t, r.Stderr, "tcp "+dest(srv.Port))
	if !found {
		t.Fatalf("no summary line for tcp %s:\n%s", dest(srv.Port), r.Stderr)
	}
	if c != [4]int{20, 10, 0, 10} {
		t.Errorf("summary seen/allowed/denied/failed = %v, want [20 10 0 10]:\n%s", c, r.Stderr)
	}
	if got := srv.WaitAccepted(10); got != 10 {
		t.Errorf("server accepted %d, want 10", got)
	}
}

// --summary has one line per destination with what happened to it.
func TestSummaryCounts(t *testing.T) {
	needC(t)
	srv, other := testutil.Listen(t), testutil.Listen(t)
	as, r := faultRun(t, []string{"-q", "--summary",
		"--fail", dest(srv.Port) + "=ECONNREFUSED:when=2..3",
		"--deny", dest(other.Port) + "=EACCES"},
		"-n", "5", "-p", port(srv.Port), "-P", port(other.Port))
	if got, want := pattern(as), []string{"ok", "ECONNREFUSED", "ECONNREFUSED", "ok", "ok"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if !strings.Contains(r.Stderr, "connvisor summary:") {
		t.Fatalf("no summary on stderr:\n%s", r.Stderr)
	}
	for _, tc := range []struct {
		dest string
		want [4]int
	}{
		{"tcp " + dest(srv.Port), [4]int{5, 3, 0, 2}},
		{"tcp " + dest(other.Port), [4]int{5, 0, 5, 0}},
	} {
		c, found := summaryLine(t, r.Stderr, tc.dest)
		if !found {
			t.Errorf("no summary line for %s:\n%s", tc.dest, r.Stderr)
			continue
		}
		if c != tc.want {
			t.Errorf("%s: seen/allowed/denied/failed = %v, want %v:\n%s", tc.dest, c, tc.want, r.Stderr)
		}
	}
	if got := srv.WaitAccepted(3); got != 3 {
		t.Errorf("server accepted %d, want 3", got)
	}
	if got := other.WaitAccepted(0); got != 0 {
		t.Errorf("denied server accepted %d, want 0", got)
	}
}
