package emulate

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// TCPState is a TCP socket's state as TCP_INFO reports it (the kernel's
// enum in include/net/tcp_states.h).
type TCPState uint8

// The TCP states the supervisor and the tarpits tell apart.
const (
	TCPEstablished TCPState = 1
	TCPSynSent     TCPState = 2
	TCPSynRecv     TCPState = 3
	TCPClose       TCPState = 7
)

// TCPStateOf reads the state of TCP socket fd.
func TCPStateOf(fd int) (TCPState, error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("getsockopt TCP_INFO: %w", err)
	}
	return TCPState(info.State), nil
}
