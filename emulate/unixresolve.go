package emulate

import (
	"encoding/binary"
	"errors"
	"path"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNeedsThread: the UNIX connect must run on a thread of the target's
// identity, which WithUnixPath was asked not to start.
var ErrNeedsThread = errors.New("connect needs a thread with the target's identity")

// UnixDecider rules on the canonical pathname of a UNIX socket the target
// asked for (symlinks, "..", "//" and relative parts resolved in the
// target's view). It returns 0 to go ahead, or the errno to answer.
type UnixDecider func(canonical string) syscall.Errno

// WithUnixPath resolves the pathname in sa as tid would (its root, cwd,
// mount namespace and credentials) to the socket's inode, lets decide rule
// on the canonical path, and then runs op with a sockaddr that names that
// very inode (through /proc/self/fd), so that the target cannot swap a
// symlink or directory between the decision and the connect or send. op
// runs with tid's credentials, so the kernel's write-permission check and
// SO_PEERCRED's uid and gid are the target's.
//
// A pathname that does not resolve is decided on its lexical form (joined
// to the target's cwd and cleaned); when allowed, the answer is the errno
// the resolution gave, as connect(2) would.
//
// With inlineOnly, WithUnixPath does nothing and returns ErrNeedsThread
// when the target's identity or view differs from the supervisor's, so
// that the caller can run it on the notification loop when that is cheap.
func (dp *Deputy) WithUnixPath(tid int, sa *Sockaddr, decide UnixDecider, op func(name *Sockaddr) syscall.Errno, inlineOnly bool) (syscall.Errno, error) {
	given := sa.pathname()
	ctx, err := dp.openContext(tid, true)
	if err != nil {
		return 0, err
	}
	defer ctx.close()
	if inlineOnly && !ctx.matchesSelf() {
		return 0, ErrNeedsThread
	}
	procFD := dp.procFD
	// In the supervisor's own root the magic link is reachable by its
	// absolute name; below another root only relative to procFD.
	absolute := ctx.sameRoot && ctx.sameNS
	run := func() syscall.Errno {
		target, errno := resolveUnixPath(given)
		if errno != 0 {
			if e := decide(lexicalPath(given)); e != 0 {
				return e
			}
			return errno
		}
		defer unix.Close(target)
		canonical, err := readlinkAt(procFD, strconv.Itoa(target))
		if err != nil {
			return syscall.EACCES
		}
		if e := decide(canonical); e != 0 {
			return e
		}
		if e := checkBoundName(target, canonical, decide); e != 0 {
			return e
		}
		var name string
		if absolute {
			name = "/proc/self/fd/" + strconv.Itoa(target)
		} else {
			if err := unix.Fchdir(procFD); err != nil {
				return syscall.EACCES
			}
			name = strconv.Itoa(target)
		}
		magic := unixSockaddr(name)
		return op(&magic)
	}
	return ctx.run(run)
}

// resolveUnixPath opens p (following symlinks, as connect does) without
// reading it, with the calling thread's root, cwd and credentials.
func resolveUnixPath(p string) (int, syscall.Errno) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return -1, e
		}
		return -1, syscall.EACCES
	}
	return fd, 0
}

// lexicalPath joins p to the calling thread's working directory (as the
// target sees it) and cleans it.
func lexicalPath(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	wd, err := unix.Getwd()
	if err != nil {
		return path.Clean("/" + p)
	}
	return path.Join(wd, p)
}

func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// unixSockaddr builds an AF_UNIX sockaddr for a pathname.
func unixSockaddr(name string) Sockaddr {
	var s Sockaddr
	binary.NativeEndian.PutUint16(s.raw[:2], syscall.AF_UNIX)
	n := copy(s.raw[sockaddrFamilySize:sockaddrUnMaxLen-1], name)
	s.len = sockaddrFamilySize + n + 1
	return s
}

// pathname is the AF_UNIX pathname in s, up to its first NUL.
func (s *Sockaddr) pathname() string {
	name := s.raw[sockaddrFamilySize:s.len]
	for i, c := range name {
		if c == 0 {
			return string(name[:i])
		}
	}
	return string(name)
}
