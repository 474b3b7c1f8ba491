package policy

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand, so that time windows are
// decided without sleeping.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func loadAt(t *testing.T, clk *fakeClock, text string, flags ...FlagRule) *Policy {
	t.Helper()
	opts := testOptions(map[string]string{"test.policy": text})
	opts.Now = clk.now
	p, err := Load(flags, "test.policy", opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTimeWindows steps a fake clock through each window and decides one
// connect at each step: "F" it failed, "." it fell through to the allow.
func TestTimeWindows(t *testing.T) {
	rows := []struct {
		rule string
		at   []time.Duration // clock offsets from load, in order
		want string
	}{
		{"for=10s", []time.Duration{0, 5 * time.Second, 9999 * time.Millisecond, 10 * time.Second, time.Hour}, "FFF.."},
		{"after=5s", []time.Duration{0, 4999 * time.Millisecond, 5 * time.Second, time.Hour}, "..FF"},
		{"after=5s for=2s", []time.Duration{4 * time.Second, 5 * time.Second, 6 * time.Second, 7 * time.Second}, ".FF."},
		// flapping: the first 5 s of every 30 s
		{"every=30s for=5s", []time.Duration{0, 4 * time.Second, 5 * time.Second, 29 * time.Second, 30 * time.Second, 34 * time.Second, 35 * time.Second, 61 * time.Second}, "FF..FF.F"},
		{"after=10s every=30s for=5s", []time.Duration{0, 9 * time.Second, 10 * time.Second, 15 * time.Second, 40 * time.Second}, "..F.F"},
		// when= counts only the connects inside the window: the first two after 5 s
		{"after=5s when=1..2", []time.Duration{0, time.Second, 5 * time.Second, 6 * time.Second, 7 * time.Second}, "..FF."},
		{"for=10s when=2+2", []time.Duration{0, 1, 2, 3, 11 * time.Second}, ".F.F."},
		// probability=1 inside the window, 0 outside it
		{"for=1s probability=1", []time.Duration{0, time.Second}, "F."},
		{"for=1s probability=0", []time.Duration{0, time.Millisecond}, ".."},
	}
	for _, row := range rows {
		clk := &fakeClock{time.Unix(1000, 0)}
		p := loadAt(t, clk, "default deny\nfail tcp 10.0.0.1 port 5432 errno=ECONNREFUSED "+row.rule+"\nallow tcp 10.0.0.1")
		var got strings.Builder
		for _, off := range row.at {
			clk.t = time.Unix(1000, 0).Add(off)
			d := decided(p, dest(t, "tcp 10.0.0.1:5432"))
			switch {
			case d.Action == Fail && d.Errno == syscall.ECONNREFUSED:
				got.WriteByte('F')
			case d.Action == Allow:
				got.WriteByte('.')
			default:
				t.Fatalf("%s: unexpected decision %+v", row.rule, d)
			}
		}
		if got.String() != row.want {
			t.Errorf("%s at %v: got %s, want %s", row.rule, row.at, got.String(), row.want)
		}
	}
}

// TestWindowForms: the file form, the compact form and a flag say the same
// and print back to what parses again.
func TestWindowForms(t *testing.T) {
	clk := &fakeClock{time.Unix(0, 0)}
	p := loadAt(t, clk, "fail tcp 10.0.0.1 port 80 errno=EIO after=5s every=30s for=5s\nfail 10.0.0.2:80=EIO:every=30s,for=5s,after=5s",
		FlagRule{Flag: "fail", Value: "10.0.0.3:80=ETIMEDOUT:for=10s,when=1..3"})
	rules := p.Rules()
	wantLong := []string{
		"fail any 10.0.0.3 port 80 errno=ETIMEDOUT when=1..3 for=10s",
		"fail tcp 10.0.0.1 port 80 errno=EIO after=5s every=30s for=5s",
		"fail any 10.0.0.2 port 80 errno=EIO after=5s every=30s for=5s",
	}
	wantCompact := []string{
		"--fail 10.0.0.3:80=ETIMEDOUT:when=1..3,for=10s",
		"--fail tcp:10.0.0.1:80=EIO:after=5s,every=30s,for=5s",
		"--fail 10.0.0.2:80=EIO:after=5s,every=30s,for=5s",
	}
	for i, r := range rules {
		if r.String() != wantLong[i] || r.Compact() != wantCompact[i] {
			t.Errorf("rule %d: %q / %q, want %q / %q", i, r.String(), r.Compact(), wantLong[i], wantCompact[i])
		}
		again := loadAt(t, clk, r.String())
		if again.Rules()[0].String() != r.String() {
			t.Errorf("rule %d does not print back: %q -> %q", i, r.String(), again.Rules()[0].String())
		}
		if after, forDur, every, ok := r.Window(); !ok || forDur == 0 || (i > 0 && (after != 5*time.Second || every != 30*time.Second)) {
			t.Errorf("rule %d: Window() = %v %v %v %v", i, after, forDur, every, ok)
		}
	}
}

func TestWindowErrors(t *testing.T) {
	rows := []struct{ text, want string }{
		{"fail 10.0.0.1 errno=EIO every=30s", `test.policy:1:25: every needs for= (how long each window lasts, like every=30s for=5s)`},
		{"fail 10.0.0.1 errno=EIO every=5s for=5s", `test.policy:1:34: for=5s must be shorter than every=5s (the rule would never stop failing)`},
		{"fail 10.0.0.1 errno=EIO for=0s", `test.policy:1:29: invalid for "0s" (expected a positive duration like 5s or 2m)`},
		{"fail 10.0.0.1 errno=EIO after=-1s", `test.policy:1:31: invalid after "-1s" (expected a positive duration like 5s or 2m)`},
		{"fail 10.0.0.1=EIO:for=10", `test.policy:1:23: invalid for "10" (expected a positive duration like 5s or 2m)`},
		{"fail 10.0.0.1 errno=EIO for=1s for=2s", `test.policy:1:32: for given twice (first at column 25)`},
		{"allow 10.0.0.1 for=10s", `test.policy:1:16: for does not apply to allow (only to fail)`},
		{"deny 10.0.0.1 after=1s", `test.policy:1:15: after does not apply to deny (use fail for injected faults)`},
	}
	for _, row := range rows {
		_, err := Load(nil, "test.policy", testOptions(map[string]string{"test.policy": row.text}))
		if err == nil || err.Error() != row.want {
			t.Errorf("%q:\n got  %v\n want %s", row.text, err, row.want)
		}
	}
}

// TestInsertRemoveReset: rules added and removed while running keep ids,
// keep the others' schedules, and Reset restarts counters and windows.
func TestInsertRemoveReset(t *testing.T) {
	clk := &fakeClock{time.Unix(1000, 0)}
	p := loadAt(t, clk, "default allow\nfail tcp 10.0.0.1 port 80 errno=EIO when=2\nallow tcp 10.0.0.2")
	db := dest(t, "tcp 10.0.0.1:80")
	if d := decided(p, db); d.Action != Allow { // match 1 of when=2
		t.Fatalf("first connect: %+v", d)
	}
	clk.t = clk.t.Add(time.Minute)
	p2, r, err := p.Insert("api", "fail 10.0.0.1:80=ECONNREFUSED:for=10s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != 2 || r.Origin() != "api#2" || p2.Rules()[1] != r {
		t.Fatalf("inserted rule: id %d origin %q at %v", r.ID(), r.Origin(), p2.Rules())
	}
	// The old rule (id 0) comes first and its count goes on: this is its 2nd match.
	if d := decided(p2, db); d.Errno != syscall.EIO {
		t.Fatalf("second connect: %+v, want EIO from the old rule", d)
	}
	if d := decided(p2, db); d.Errno != syscall.ECONNREFUSED {
		t.Fatalf("third connect: %+v, want ECONNREFUSED from the new rule", d)
	}
	clk.t = clk.t.Add(10 * time.Second) // the new rule's window closed
	if d := decided(p2, db); d.Action != Allow {
		t.Fatalf("after the window: %+v", d)
	}
	p2.Reset() // when=2 counts again from 0, the window opens again for 10 s
	if d := decided(p2, db); d.Errno != syscall.ECONNREFUSED {
		t.Fatalf("after reset, 1st: %+v", d)
	}
	if d := decided(p2, db); d.Errno != syscall.EIO {
		t.Fatalf("after reset, 2nd: %+v", d)
	}
	front, r3, err := p2.Insert("api", "deny 10.0.0.1", -1)
	if err != nil || front.Rules()[0] != r3 || r3.ID() != 3 {
		t.Fatalf("insert at front: %v %v", err, front.Rules())
	}
	p3, err := front.Remove(2)
	if err != nil || len(p3.Rules()) != 3 {
		t.Fatalf("remove: %v %v", err, p3.Rules())
	}
	if _, err := p3.Remove(2); !errors.Is(err, ErrNoRule) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, _, err := p3.Insert("api", "allow any", 99); !errors.Is(err, ErrNoRule) {
		t.Fatalf("insert after a missing rule: %v", err)
	}
	// ids never go back: the next insert after a removal is 4, not 3
	if _, r4, err := p3.Insert("api", "allow any", -1); err != nil || r4.ID() != 4 {
		t.Fatalf("id after remove: %v %v", r4, err)
	}
	for _, row := range []struct{ line, want string }{
		{"fail 10.0.0.1=ECONREFUSED", `api:1:15: unknown errno "ECONREFUSED" (did you mean ECONNREFUSED?)`},
		{"default allow", `api:1:1: default is a policy line, not a rule: replace the whole policy to change it`},
		{"", `api:1: empty rule (expected a rule like fail 127.0.0.1:5432=ECONNREFUSED:for=10s)`},
		{"allow any\nallow any", `a rule is one line (send a whole policy to replace the policy)`},
	} {
		if _, _, err := p3.Insert("api", row.line, -1); err == nil || err.Error() != row.want {
			t.Errorf("Insert(%q): %v, want %s", row.line, err, row.want)
		}
	}
	if len(p3.Rules()) != 3 {
		t.Fatal("a failed insert changed the policy")
	}
}

// TestSucceed: a replacing policy's ids follow the replaced one's.
func TestSucceed(t *testing.T) {
	clk := &fakeClock{time.Unix(0, 0)}
	old := loadAt(t, clk, "allow 10.0.0.1\nallow 10.0.0.2")
	old, _, _ = old.Insert("api", "allow 10.0.0.3", -1)
	next := loadAt(t, clk, "allow 10.0.0.4\nallow 10.0.0.5")
	old.Succeed(next)
	if r := next.Rules(); r[0].ID() != 3 || r[1].ID() != 4 {
		t.Fatalf("ids %d %d, want 3 4", r[0].ID(), r[1].ID())
	}
	if _, r, _ := next.Insert("api", "allow any", -1); r.ID() != 5 {
		t.Fatalf("next insert id %d, want 5", r.ID())
	}
}
