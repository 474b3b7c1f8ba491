package emulate

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleStatus = `Name:	cat
Umask:	0022
State:	R (running)
Tgid:	4242
Ngid:	0
Pid:	4243
PPid:	1
Uid:	1000	1001	1002	1003
Gid:	2000	2001	2002	2003
FDSize:	64
Groups:	4 24 27 
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	00000000a80425fb
`

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte(sampleStatus), true)
	if err != nil {
		t.Fatal(err)
	}
	want := procStatus{
		tgid: 4242, uids: [4]uint32{1000, 1001, 1002, 1003}, gids: [4]uint32{2000, 2001, 2002, 2003},
		groups: []uint32{4, 24, 27}, capEff: 0xa80425fb,
	}
	if st.tgid != want.tgid || st.uids != want.uids || st.gids != want.gids || st.capEff != want.capEff ||
		len(st.groups) != 3 || st.groups[0] != 4 || st.groups[1] != 24 || st.groups[2] != 27 {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	if st, err := parseStatus([]byte(sampleStatus), false); err != nil || st.groups != nil {
		t.Fatalf("without groups: %+v, %v", st, err)
	}
	for name, bad := range map[string]string{
		"no CapEff":     strings.Replace(sampleStatus, "CapEff:", "CapXxx:", 1),
		"three uids":    strings.Replace(sampleStatus, "1000\t1001\t1002\t1003", "1000\t1001\t1002", 1),
		"five gids":     strings.Replace(sampleStatus, "2003", "2003 7", 1),
		"bad group":     strings.Replace(sampleStatus, "27 ", "x ", 1),
		"two masks":     strings.Replace(sampleStatus, "a80425fb", "a80425fb 1", 1),
		"uid too large": strings.Replace(sampleStatus, "1000", "4294967296", 1),
	} {
		if _, err := parseStatus([]byte(bad), true); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The one parser reads this very process as the system calls see it.
func TestReadStatusSelf(t *testing.T) {
	st, err := readStatus(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	r, e, s := unix.Getresuid()
	if st.tgid != uint32(os.Getpid()) || st.uids[0] != uint32(r) || st.uids[1] != uint32(e) || st.uids[2] != uint32(s) {
		t.Fatalf("status %+v, getresuid %d %d %d", st, r, e, s)
	}
	self, err := selfIdentity()
	if err != nil {
		t.Fatal(err)
	}
	them, err := targetIdentity(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if !self.equal(&them) {
		t.Fatalf("selfIdentity %+v, targetIdentity %+v", self, them)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(sampleStatus))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStatus(b, true)
	})
}

// Identify and ReadSender run before an answer: their parse allocates
// nothing.
func TestParseStatusAllocs(t *testing.T) {
	b := []byte(sampleStatus)
	if n := testing.AllocsPerRun(100, func() { parseStatus(b, false) }); n != 0 {
		t.Fatalf("parseStatus allocates %v times", n)
	}
}

func BenchmarkReadStatus(b *testing.B) {
	for b.Loop() {
		if _, err := readStatus(os.Getpid(), false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadStatusManyGroups: a thread in thousands of supplementary groups
// has a status file longer than one read's buffer; its groups and CapEff
// (which comes after them) are all read.
func TestReadStatusManyGroups(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("setting supplementary groups needs root")
	}
	groups := make([]uint32, 3000)
	for i := range groups {
		groups[i] = uint32(100000 + i)
	}
	cmd := exec.Command("sleep", "10")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: groups}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	st, err := readStatus(cmd.Process.Pid, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.groups) != len(groups) || st.groups[len(st.groups)-1] != groups[len(groups)-1] {
		t.Errorf("read %d groups, want %d", len(st.groups), len(groups))
	}
	if st.capEff == 0 {
		t.Error("CapEff of a root process read as 0: the end of the file was lost")
	}
}
