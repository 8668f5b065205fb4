package wanbench

import (
	"maps"
	"net"
	"slices"
)

// freeTCPPorts returns n distinct ports on 127.0.0.1 that are free now.
func freeTCPPorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func mapsKeys[V any](m map[string]V) []string { return slices.Collect(maps.Keys(m)) }
