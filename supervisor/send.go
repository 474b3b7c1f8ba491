package supervisor

import "syscall"

// handleSend answers a trapped send that may carry a destination.
func (s *Supervisor) handleSend(n *Notification) {
	s.refuse(n, "send with a destination (not supervised yet)", syscall.EPERM)
}
