package policy

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// errnoNames maps Linux errno numbers to their names. It is a table, not a
// lookup in syscall, because syscall only knows the messages, and policies
// and logs speak in names. Taken from asm-generic/errno-base.h and errno.h,
// which every Linux architecture we run on (amd64, arm64, riscv64) uses.
var errnoNames = [...]string{
	1:   "EPERM",
	2:   "ENOENT",
	3:   "ESRCH",
	4:   "EINTR",
	5:   "EIO",
	6:   "ENXIO",
	7:   "E2BIG",
	8:   "ENOEXEC",
	9:   "EBADF",
	10:  "ECHILD",
	11:  "EAGAIN",
	12:  "ENOMEM",
	13:  "EACCES",
	14:  "EFAULT",
	15:  "ENOTBLK",
	16:  "EBUSY",
	17:  "EEXIST",
	18:  "EXDEV",
	19:  "ENODEV",
	20:  "ENOTDIR",
	21:  "EISDIR",
	22:  "EINVAL",
	23:  "ENFILE",
	24:  "EMFILE",
	25:  "ENOTTY",
	26:  "ETXTBSY",
	27:  "EFBIG",
	28:  "ENOSPC",
	29:  "ESPIPE",
	30:  "EROFS",
	31:  "EMLINK",
	32:  "EPIPE",
	33:  "EDOM",
	34:  "ERANGE",
	35:  "EDEADLK",
	36:  "ENAMETOOLONG",
	37:  "ENOLCK",
	38:  "ENOSYS",
	39:  "ENOTEMPTY",
	40:  "ELOOP",
	42:  "ENOMSG",
	43:  "EIDRM",
	44:  "ECHRNG",
	45:  "EL2NSYNC",
	46:  "EL3HLT",
	47:  "EL3RST",
	48:  "ELNRNG",
	49:  "EUNATCH",
	50:  "ENOCSI",
	51:  "EL2HLT",
	52:  "EBADE",
	53:  "EBADR",
	54:  "EXFULL",
	55:  "ENOANO",
	56:  "EBADRQC",
	57:  "EBADSLT",
	59:  "EBFONT",
	60:  "ENOSTR",
	61:  "ENODATA",
	62:  "ETIME",
	63:  "ENOSR",
	64:  "ENONET",
	65:  "ENOPKG",
	66:  "EREMOTE",
	67:  "ENOLINK",
	68:  "EADV",
	69:  "ESRMNT",
	70:  "ECOMM",
	71:  "EPROTO",
	72:  "EMULTIHOP",
	73:  "EDOTDOT",
	74:  "EBADMSG",
	75:  "EOVERFLOW",
	76:  "ENOTUNIQ",
	77:  "EBADFD",
	78:  "EREMCHG",
	79:  "ELIBACC",
	80:  "ELIBBAD",
	81:  "ELIBSCN",
	82:  "ELIBMAX",
	83:  "ELIBEXEC",
	84:  "EILSEQ",
	85:  "ERESTART",
	86:  "ESTRPIPE",
	87:  "EUSERS",
	88:  "ENOTSOCK",
	89:  "EDESTADDRREQ",
	90:  "EMSGSIZE",
	91:  "EPROTOTYPE",
	92:  "ENOPROTOOPT",
	93:  "EPROTONOSUPPORT",
	94:  "ESOCKTNOSUPPORT",
	95:  "EOPNOTSUPP",
	96:  "EPFNOSUPPORT",
	97:  "EAFNOSUPPORT",
	98:  "EADDRINUSE",
	99:  "EADDRNOTAVAIL",
	100: "ENETDOWN",
	101: "ENETUNREACH",
	102: "ENETRESET",
	103: "ECONNABORTED",
	104: "ECONNRESET",
	105: "ENOBUFS",
	106: "EISCONN",
	107: "ENOTCONN",
	108: "ESHUTDOWN",
	109: "ETOOMANYREFS",
	110: "ETIMEDOUT",
	111: "ECONNREFUSED",
	112: "EHOSTDOWN",
	113: "EHOSTUNREACH",
	114: "EALREADY",
	115: "EINPROGRESS",
	116: "ESTALE",
	117: "EUCLEAN",
	118: "ENOTNAM",
	119: "ENAVAIL",
	120: "EISNAM",
	121: "EREMOTEIO",
	122: "EDQUOT",
	123: "ENOMEDIUM",
	124: "EMEDIUMTYPE",
	125: "ECANCELED",
	126: "ENOKEY",
	127: "EKEYEXPIRED",
	128: "EKEYREVOKED",
	129: "EKEYREJECTED",
	130: "EOWNERDEAD",
	131: "ENOTRECOVERABLE",
	132: "ERFKILL",
	133: "EHWPOISON",
}

// errnoAliases are the second names some errnos have; ErrnoName never
// returns them, ParseErrno accepts them.
var errnoAliases = map[string]syscall.Errno{
	"EWOULDBLOCK": syscall.EAGAIN,
	"EDEADLOCK":   syscall.EDEADLK,
	"ENOTSUP":     syscall.EOPNOTSUPP,
}

// ErrnoName returns the Linux name of e ("ECONNREFUSED"), or "errno N" for a
// number without one.
func ErrnoName(e syscall.Errno) string {
	if int(e) > 0 && int(e) < len(errnoNames) && errnoNames[e] != "" {
		return errnoNames[e]
	}
	return "errno " + strconv.Itoa(int(e))
}

// ParseErrno returns the errno called name (any Linux errno name, in any
// case). An unknown name is an error that suggests the nearest known one,
// because a typo in a fault rule would otherwise silently test nothing.
func ParseErrno(name string) (syscall.Errno, error) {
	up := strings.ToUpper(name)
	if e, ok := errnoAliases[up]; ok {
		return e, nil
	}
	for i, n := range errnoNames {
		if n != "" && n == up {
			return syscall.Errno(i), nil
		}
	}
	if name == "" {
		return 0, fmt.Errorf("missing errno name (like ECONNREFUSED)")
	}
	best, bestDist := "", 1<<30
	for _, n := range errnoNames {
		if n == "" {
			continue
		}
		if d := editDistance(up, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	for n := range errnoAliases {
		if d := editDistance(up, n); d < bestDist || (d == bestDist && n < best) {
			best, bestDist = n, d
		}
	}
	if bestDist <= 3 {
		return 0, fmt.Errorf("unknown errno %q (did you mean %s?)", name, best)
	}
	return 0, fmt.Errorf("unknown errno %q (expected a Linux errno name like ECONNREFUSED)", name)
}

// editDistance is the Levenshtein distance of a and b, in bytes. Inputs are
// bounded by the caller (errno names, keywords), so the quadratic cost is
// small; longer inputs are cut so that no input makes it slow.
func editDistance(a, b string) int {
	const max = 64
	if len(a) > max {
		a = a[:max]
	}
	if len(b) > max {
		b = b[:max]
	}
	var prev, cur [max + 1]int
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
