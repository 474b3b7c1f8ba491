package supervisor

import (
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
)

// TestRestartAfterHeldSendFoundGone: once the held send has found its
// call gone with nothing sent, a restart of the call is a new call, sent
// afresh; it must not join a held send that is about to give up without
// answering it (the restart would wait for ever). The supervisor here has
// no listener, so every notification is gone.
func TestRestartAfterHeldSendFoundGone(t *testing.T) {
	s := &Supervisor{listener: fd.New(-1), log: zap.NewNop(), stats: newStats(), arch: nativeAuditArch()}
	s.repeats.init()
	s.sends.byTid = make(map[uint32]*heldSend)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	n := Notification{ID: 1, Tid: 4242, Nr: unix.SYS_SENDTO, Args: [6]uint64{3, 0x1000, 100, 0, 0, 0}}
	info := emulate.SocketInfo{Domain: unix.AF_UNIX, Type: unix.SOCK_STREAM}
	c := &call{n: n, dup: fd.New(pair[0]), info: info}
	h := s.beginHeldSend(c, 0)
	held := c.takeOver()
	defer held.release()

	if s.heldValid(h) { // the held goroutine's check: call 1 was interrupted
		t.Fatal("a notification of a supervisor without a listener is valid")
	}
	dup, err := unix.FcntlInt(uintptr(held.dup.Int()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	restart := &call{n: n, dup: fd.New(dup), info: info}
	restart.n.ID = 2
	defer restart.release()
	if s.takeOverSend(restart) {
		t.Fatal("the restart joined a held send that had found its call gone with nothing sent")
	}
	s.answerHeldSend(&sendOp{c: held, held: h}, h, true, 0, 0)
	if left := len(s.sends.byTid); left != 0 {
		t.Errorf("%d held sends left in the table", left)
	}
}
