// Package control drives a running supervisor from outside: an HTTP/JSON
// API on a UNIX socket (the policy, rules added and removed one at a time,
// counters, the recent decisions) and Prometheus metrics.
//
// A Server holds a Target (a *supervisor.Cmd, a *supervisor.Supervisor, or
// anything with Policy and SetPolicy) and is fed the decisions through
// Observe, which the holder wires to supervisor.Cmd.OnDecision. Every
// change is computed from the policy in force under one lock and swapped
// in whole, so two clients changing the policy at once never see a
// half-applied change, and a change that does not parse leaves the policy
// untouched.
//
// # The tree cannot use the API
//
// The wrapped programs run as the same user as connvisor, so the socket's
// mode (0600) does not keep them out. Two locks do:
//
//   - The policy in force always begins with a rule the API does not show
//     and no change removes: `deny unix PATH errno=EACCES` for the socket's
//     canonical path. The supervisor decides UNIX connects on the canonical
//     path (symlinks resolved) and, for a socket with several links, on the
//     name it was bound at too, so neither a symlink nor a hard link opens
//     it.
//   - A connection whose peer is connvisor's own process is closed at
//     accept: emulated connects of the tree are made by the supervisor, so
//     SO_PEERCRED names its pid. So is a peer whose parent chain in /proc
//     leads to connvisor (a connect the kernel made, --mode continue).
//     This covers the socket renamed by the tree (the rule above then no
//     longer names it). Under --mode continue, which trusts the program,
//     a process re-parented out of the tree (double fork) that connects
//     through a symlink, a hard link or a new name is not caught.
//
// A peer of another user (root excepted) is refused too.
//
// # Endpoints
//
//	GET    /v1/policy          the rules in force (JSON, or text/plain with Accept: text/plain)
//	PUT    /v1/policy          replace the policy (body: text/plain, the file language)
//	POST   /v1/rules           {"rule": "fail 127.0.0.1:5432=ECONNREFUSED:for=10s", "after": 3}
//	DELETE /v1/rules/{id}
//	GET    /v1/stats           per destination: seen, allowed, denied, failed, latency percentiles
//	POST   /v1/reset           counters of /v1/stats, and every fault schedule and time window
//	GET    /v1/decisions?since=N&limit=M
//	GET    /metrics            Prometheus text format
package control
