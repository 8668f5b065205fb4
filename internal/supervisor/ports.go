package supervisor

import (
	"errors"
	"net"
	"strconv"
)

// FreeAddrs returns n sets of addresses on 127.0.0.1 whose ports the system
// reports free now, for TCP and UDP both (gossip uses both), all distinct.
// Another process may take a port before the region binds it; Start's
// retries do not help then, so callers on a busy machine pass fixed ports.
func FreeAddrs(n int) ([]Addrs, error) {
	taken := map[int]bool{}
	free := func() (string, error) {
		for range 100 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", err
			}
			port := ln.Addr().(*net.TCPAddr).Port
			udp, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			ln.Close()
			if uerr != nil || taken[port] {
				if udp != nil {
					udp.Close()
				}
				continue
			}
			udp.Close()
			taken[port] = true
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
		return "", errors.New("no free port on 127.0.0.1")
	}
	out := make([]Addrs, n)
	for i := range out {
		for _, a := range []*string{&out[i].API, &out[i].Gossip, &out[i].Raft} {
			addr, err := free()
			if err != nil {
				return nil, err
			}
			*a = addr
		}
	}
	return out, nil
}

// PortAddrs returns the addresses of n regions on fixed ports of 127.0.0.1,
// as `causeway serve` defaults them: API ports from base, gossip at API +
// 100, Raft at API + 200.
func PortAddrs(base, n int) []Addrs {
	out := make([]Addrs, n)
	for i := range out {
		at := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
		out[i] = Addrs{API: at(base + i), Gossip: at(base + i + 100), Raft: at(base + i + 200)}
	}
	return out
}
