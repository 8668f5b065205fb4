package main

import (
	"fmt"
	"regexp"

	"github.com/google/uuid"
)

// clusterNamespace is the UUID namespace of cluster names: a cluster named
// N has the id uuid.NewSHA1(clusterNamespace, N), on every machine.
var clusterNamespace = uuid.MustParse("7c0a3c2e-1f0b-4b8e-9c55-6361757365ff")

var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// parseClusterID reads --cluster-id: a UUID, or a name (letters, digits,
// '.', '_', '-'; at most 128) that stands for the UUID derived from it, so
// that the regions of a cluster can be started with a name instead of a
// generated id. A name must be unique to its cluster: two clusters started
// with one name share an id, and accept each other's causal tokens.
func parseClusterID(s string) (uuid.UUID, error) {
	if id, err := uuid.Parse(s); err == nil {
		if id == uuid.Nil {
			return uuid.Nil, fmt.Errorf("--cluster-id %s is the nil UUID; give a UUID or a name", s)
		}
		return id, nil
	}
	if !clusterName.MatchString(s) {
		return uuid.Nil, fmt.Errorf("--cluster-id %q is neither a UUID nor a cluster name (1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit)", s)
	}
	return uuid.NewSHA1(clusterNamespace, []byte(s)), nil
}
