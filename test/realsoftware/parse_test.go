package realsoftware

import (
	"os"
	"path/filepath"
	"testing"
)

// The parsers decide what counts as a difference: each outcome form they
// read, on output shaped as the real tools print it.
func TestParseGo(t *testing.T) {
	out := "\x16=== RUN   TestA\n\x16=== RUN   TestA/sub\n    a_test.go:3: sub log\n" +
		"\x16=== NAME  TestB\n    b_test.go:9: b broke\n" +
		"\x16=== NAME  TestA/sub\n    a_test.go:4: more sub log\n" +
		"partial line without newline\x16--- FAIL: TestA/sub (0.00s)\n" +
		"\x16--- FAIL: TestA (0.00s)\n\x16--- SKIP: TestC (0.00s)\n\x16--- PASS: TestB (0.01s)\n"
	cases, err := parseGo("", out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]caseResult{
		"TestA/sub": {failed, "a_test.go:3: sub log | a_test.go:4: more sub log | partial line without newline"},
		"TestA":     {failed, ""},
		"TestC":     {skipped, ""},
		"TestB":     {passed, ""},
	}
	for id, w := range want {
		if got, ok := cases[id]; !ok || got.status != w.status || got.detail != w.detail {
			t.Errorf("%s: got %+v (present %v), want %+v", id, got, ok, w)
		}
	}
	if len(cases) != len(want) {
		t.Errorf("got %d cases, want %d: %v", len(cases), len(want), cases)
	}
}

func TestParsePython(t *testing.T) {
	dir := t.TempDir()
	junit := `<testsuites><testsuite>
<testcase name="test.test_x.A.test_ok" status="run" result="completed"/>
<testcase name="test.test_x.A.test_skip" status="run" result="completed"><skipped>needs TIPC</skipped></testcase>
<testcase name="test.test_x.A.test_fail" status="run" result="completed"><failure type="AssertionError" message="AssertionError: 1 != 2"/></testcase>
<testcase status="run" result="completed"/>
</testsuite></testsuites>`
	if err := os.WriteFile(filepath.Join(dir, "junit.xml"), []byte(junit), 0o644); err != nil {
		t.Fatal(err)
	}
	rule := "======================================================================\n"
	dashes := "----------------------------------------------------------------------\n"
	out := rule + "FAIL: test_sub (test.test_x.A.test_sub) (n=1)\n" + dashes +
		"Traceback (most recent call last):\n  File \"x.py\", line 1\nAssertionError: sub 1\n\n" +
		rule + "ERROR: setUpClass (test.test_x.B)\n" + dashes +
		"Traceback (most recent call last):\nOSError: [Errno 19] No such device\n\n" + dashes + "Ran 5 tests\n\nFAILED (failures=2)\n"
	cases, err := parsePython(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]caseResult{
		"test.test_x.A.test_ok":    {passed, ""},
		"test.test_x.A.test_skip":  {skipped, "needs TIPC"},
		"test.test_x.A.test_fail":  {failed, "AssertionError: 1 != 2"},
		"test.test_x.A.test_sub":   {failed, "FAIL (n=1): AssertionError: sub 1"},
		"test.test_x.B.setUpClass": {failed, "ERROR: OSError: [Errno 19] No such device"},
	}
	for id, w := range want {
		if got, ok := cases[id]; !ok || got != w {
			t.Errorf("%s: got %+v (present %v), want %+v", id, got, ok, w)
		}
	}
	if len(cases) != len(want) {
		t.Errorf("got %d cases, want %d: %v", len(cases), len(want), cases)
	}

	// Without the JUnit file (the run died), the verbose lines count.
	verbose := "test_a (test.test_x.A.test_a) ... ok\ntest_b (test.test_x.A.test_b) ... skipped 'Windows only'\n" +
		"test_c (test.test_x.A.test_c) ... ERROR\ntest_d (test.test_x.A.test_d) ... "
	cases, err = parsePython(t.TempDir(), verbose)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 3 || cases["test.test_x.A.test_a"].status != passed ||
		cases["test.test_x.A.test_b"].status != skipped || cases["test.test_x.A.test_c"].status != failed {
		t.Errorf("verbose fallback: %v", cases)
	}
}

func TestDifferences(t *testing.T) {
	native := &suiteRun{cases: map[string]caseResult{
		"same": {passed, ""}, "broken": {failed, ""}, "lost": {passed, ""}, "now-skipped": {passed, ""}, "now-fails": {skipped, ""},
	}}
	wrapped := &suiteRun{cases: map[string]caseResult{
		"same": {passed, ""}, "broken": {passed, ""}, "now-skipped": {skipped, "x"}, "now-fails": {failed, ""},
	}}
	got := differences(native, wrapped)
	want := []string{"lost", "now-fails", "now-skipped"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
