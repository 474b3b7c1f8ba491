// Package emulate does the target's connect for it: it copies the sockaddr
// out of the target's memory with the kernel's own validation rules,
// decodes it into a policy.Dest, duplicates the target's socket and
// performs the connect on that duplicate with the very bytes that were
// decided on, so the target cannot swap the address after the check.
package emulate
