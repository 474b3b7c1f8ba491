package learn

import (
	"strings"
	"unicode/utf8"
)

// DefaultTempRoots are the directories whose contents are temporary: a
// socket below one of them gets a new directory name on every run
// (mktemp -d, t.TempDir, tempfile.mkdtemp), so the directories between
// the root and the socket's name become '*'.
var DefaultTempRoots = []string{"/tmp", "/var/tmp", "/dev/shm"}

// keptTempDirs are directories below a temporary root that are not
// temporary: the X11 and ICE socket directories have fixed names.
var keptTempDirs = map[string]bool{
	".X11-unix": true, ".ICE-unix": true, ".XIM-unix": true, ".font-unix": true, ".Test-unix": true,
}

// GeneralisePath returns the glob a rule uses for the UNIX socket path p,
// so that the names a program makes afresh on each run (temporary
// directories, pids, counters) match next time too:
//
//   - below a temporary root (DefaultTempRoots and tempRoots), every
//     directory between the root and the socket's name is '*'
//     (/tmp/tmp.k3j2/sock → /tmp/*/sock), the X11 socket directories
//     excepted, and a name that starts with "tmp" is "tmp*";
//   - in every other name, a word (the parts between '.', '-' and '_')
//     that mixes letters and digits more than once is '*' (k3j2, 3fa9c2e1),
//     and a run of digits in any other word is '*' (sock.4711 → sock.*,
//     worker-3 → worker-*), except for the uid in /run/user/UID, which is
//     the same on every run (/run/user/1000/bus is kept);
//   - glob metacharacters of the name are escaped, and bytes a policy line
//     cannot hold (blanks, control characters, invalid UTF-8) become '?'.
//
// The glob always matches p (FuzzGeneralise checks it).
func GeneralisePath(p string, tempRoots []string) string {
	root := tempRoot(p, tempRoots)
	var b strings.Builder
	if root != "" {
		b.WriteString(escape(root))
		rest := strings.Split(p[len(root)+1:], "/")
		for i, c := range rest {
			b.WriteByte('/')
			switch {
			case keptTempDirs[c]:
				b.WriteString(escape(c))
			case i < len(rest)-1:
				b.WriteByte('*')
			case i == len(rest)-1 && len(c) > 3 && strings.HasPrefix(c, "tmp"):
				b.WriteString("tmp*")
			default:
				b.WriteString(generaliseName(c))
			}
		}
		return b.String()
	}
	comps := strings.Split(p, "/")
	for i, c := range comps {
		if i > 0 {
			b.WriteByte('/')
		}
		if isUserRuntimeDir(comps[:i]) {
			b.WriteString(escape(c))
			continue
		}
		b.WriteString(generaliseName(c))
	}
	return b.String()
}

// GeneraliseAbstract returns the glob a rule uses for the abstract UNIX
// name (without its leading NUL and without the '@' of the policy
// language). A name that looks like a path is generalised as one; any
// other is generalised word by word as GeneralisePath does with a name.
// In abstract globs '*' matches '/' too.
func GeneraliseAbstract(name string, tempRoots []string) string {
	if strings.HasPrefix(name, "/") {
		return GeneralisePath(name, tempRoots)
	}
	return generaliseName(name)
}

// tempRoot returns the longest temporary root that p lies below (with at
// least one name after it), or "".
func tempRoot(p string, extra []string) string {
	best := ""
	for _, roots := range [][]string{DefaultTempRoots, extra} {
		for _, r := range roots {
			r = strings.TrimRight(r, "/")
			if r == "" || !strings.HasPrefix(r, "/") {
				continue
			}
			if strings.HasPrefix(p, r+"/") && len(p) > len(r)+1 && len(r) > len(best) {
				best = r
			}
		}
	}
	return best
}

// isUserRuntimeDir reports whether the components before a name are
// /run/user or /var/run/user: the name is a uid, the same on every run.
func isUserRuntimeDir(before []string) bool {
	s := strings.Join(before, "/")
	return s == "/run/user" || s == "/var/run/user"
}

// generaliseName generalises one name (no '/' meaning) word by word.
func generaliseName(name string) string {
	var b strings.Builder
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && !isSeparator(name[i]) {
			continue
		}
		b.WriteString(generaliseWord(name[start:i]))
		if i < len(name) {
			b.WriteString(escape(name[i : i+1]))
		}
		start = i + 1
	}
	return b.String()
}

func isSeparator(c byte) bool { return c == '.' || c == '-' || c == '_' || c == '/' }

// generaliseWord: a word that alternates letters and digits more than once
// (random: k3j2, a1b2, 3fa9c2e1) is '*'; otherwise each run of digits is
// '*' (4711, worker3, v2beta).
func generaliseWord(w string) string {
	digits, segments := 0, 0
	prevDigit := false
	for i := 0; i < len(w); i++ {
		d := isDigit(w[i])
		if d {
			digits++
		}
		if i == 0 || d != prevDigit {
			segments++
		}
		prevDigit = d
	}
	switch {
	case digits == 0:
		return escape(w)
	case segments > 2:
		return "*"
	}
	var b strings.Builder
	for i := 0; i < len(w); {
		if isDigit(w[i]) {
			for i < len(w) && isDigit(w[i]) {
				i++
			}
			b.WriteByte('*')
			continue
		}
		j := i
		for j < len(w) && !isDigit(w[j]) {
			j++
		}
		b.WriteString(escape(w[i:j]))
		i = j
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// escape writes s as literal glob text that a policy line can hold: glob
// metacharacters escaped, and blanks, control characters and bytes of
// invalid UTF-8 as '?' (one byte each, as the glob matches bytes).
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '*' || c == '?' || c == '[' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		case c <= ' ' || c == 0x7f:
			b.WriteByte('?')
			i++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !printableRune(r) {
				for range n {
					b.WriteByte('?')
				}
			} else {
				b.WriteString(s[i : i+n])
			}
			i += n
		}
	}
	return b.String()
}

// printableRune: no line separators and no blanks beyond ASCII, which a
// reader could not see in a policy line.
func printableRune(r rune) bool {
	return r >= 0xa0 && r != 0x2028 && r != 0x2029 && r != 0x85 && !(r >= 0x2000 && r <= 0x200f) && r != 0xfeff && r != 0x3000
}
