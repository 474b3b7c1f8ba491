// Package agent supervises containers: a container runtime (runc, crun, or
// containerd through them) loads a seccomp filter whose rules say
// SCMP_ACT_NOTIFY, connects to the agent's UNIX socket (the profile's
// listenerPath) and sends one message: a JSON ContainerProcessState (the
// runtime-spec's type) and, by SCM_RIGHTS, the filter's listener. The agent
// answers that listener with the supervisor package's engine (Supervise),
// under the policy chosen for the container.
//
// # Which policy
//
// The profile's listenerMetadata names a policy file in the policy
// directory; else the container's annotation org.connvisor.policy does;
// else the agent's own policy file applies; else the listener is refused:
// the agent closes it, and every trapped call of the container fails with
// ENOSYS (fail closed, never "allow"). Every decision is logged with the
// container's id, and with its pod, namespace and container name when the
// CRI annotations (io.kubernetes.cri.*) are there.
//
// # One hand-off per supervised tree
//
// A runtime sends one hand-off for a container's init and one more for
// every exec into it (crun's exec names pid 0). Listeners of one container
// share its policy (so a fault schedule counts across them) and its
// counters (Summary).
//
// # Upgrades
//
// A running agent also listens on UpgradePath(listen). A new agent started
// with Config.Upgrade connects there and the old one hands it every
// listener (with the container's state, counters and the policy's source)
// and the listening socket itself, then exits: no container loses supervision,
// and no runtime finds the socket closed. An agent that dies without doing
// so loses its listeners: the containers' trapped calls fail with ENOSYS
// from then on, and cannot be supervised again.
//
// # Profiles
//
// Profile writes the OCI linux.seccomp object that traps what the
// supervisor needs, from the rules the supervisor's own filter is built
// from (supervisor.FilterRules), merged into a base profile.
package agent
