package process

import (
	"slices"
	"strings"

	"github.com/causewaydb/causeway/internal/pki"
)

// Who may call what, on a node with security on. Every method of every
// service a node serves has a rule (a test walks the service descriptors),
// so a new method cannot be reachable by default.
var (
	readers = []pki.Role{pki.RoleAdmin, pki.RoleReadWrite, pki.RoleReadOnly, pki.RoleNode}
	writers = []pki.Role{pki.RoleAdmin, pki.RoleReadWrite, pki.RoleNode}
	admins  = []pki.Role{pki.RoleAdmin}
	nodes   = []pki.Role{pki.RoleNode}
)

// rules maps a procedure (/package.Service/Method) to the roles allowed to
// call it. Nodes may call the client API because a region forwards
// linearizable requests to the leader's region on its clients' behalf.
var rules = map[string][]pki.Role{
	"/causeway.v1.KVService/Get":       readers,
	"/causeway.v1.KVService/ReadMany":  readers,
	"/causeway.v1.KVService/Scan":      readers,
	"/causeway.v1.KVService/Watch":     readers,
	"/causeway.v1.KVService/Put":       writers,
	"/causeway.v1.KVService/Delete":    writers,
	"/causeway.v1.KVService/WriteMany": writers,

	"/causeway.v1.LinearService/Lookup":        readers,
	"/causeway.v1.LinearService/Get":           readers,
	"/causeway.v1.LinearService/Claim":         writers,
	"/causeway.v1.LinearService/Release":       writers,
	"/causeway.v1.LinearService/CompareAndSet": writers,
	"/causeway.v1.LinearService/GrantLease":    writers,
	"/causeway.v1.LinearService/KeepAlive":     writers,
	"/causeway.v1.LinearService/Revoke":        writers,
	"/causeway.v1.LinearService/Lock":          writers,
	"/causeway.v1.LinearService/Unlock":        writers,
	"/causeway.v1.LinearService/Progress":      nodes, // the leader asks a joining voter how far its log is
	// Not nodes: approving voters is the operator's decision, which a node
	// certificate alone must not make.
	"/causeway.v1.LinearService/ApproveVoter": admins,

	"/causeway.v1.AdminService/Status":       readers,
	"/causeway.v1.AdminService/SetLink":      admins,
	"/causeway.v1.AdminService/RemoveRegion": admins,
	"/causeway.v1.AdminService/SetDrain":     admins,
	"/causeway.v1.AdminService/Backup":       admins, // a backup holds every record of the region

	"/causeway.v1.ReplicationService/Replicate": nodes,
	"/causeway.v1.ReplicationService/Snapshot":  nodes,
}

// open paths need no credential: probes, health checking, reflection of
// the client API, and the metrics a Prometheus server scrapes.
func openPath(path string) bool {
	switch {
	case path == "/", path == "/healthz", path == "/readyz", path == "/metrics":
		return true
	case strings.HasPrefix(path, "/grpc.health.v1.Health/"),
		strings.HasPrefix(path, "/grpc.reflection.v1.ServerReflection/"),
		strings.HasPrefix(path, "/grpc.reflection.v1alpha.ServerReflection/"):
		return true
	}
	return false
}

// allowed reports whether role may call path: a procedure's rule, the
// admin role for anything else (Go's profiles, /debug/pprof/).
func allowed(path string, role pki.Role) bool {
	if roles, ok := rules[path]; ok {
		return slices.Contains(roles, role)
	}
	return role == pki.RoleAdmin
}
