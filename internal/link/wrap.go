package link

import "net"

// Wrap returns c as a connection through the link to peer, for traffic
// that cannot announce its region with the preamble: what is written to
// the returned Conn is delayed (or dropped, when the link is cut outward)
// as the link to peer says, and what is read from it is dropped while the
// link is cut inward. The delay proxies of `causeway bench`, which carry
// another system's (etcd's) member-to-member traffic across the same
// emulated WAN as Causeway's, are built on it.
func (e *Emulator) Wrap(c net.Conn, peer string) *Conn { return newConn(e, c, peer) }
