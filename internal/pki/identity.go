package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Role is what a client may do. Nodes have RoleNode, which no client has.
type Role string

// Roles, from most to least privileged.
const (
	RoleAdmin     Role = "admin"     // everything a client may do, AdminService included
	RoleReadWrite Role = "readwrite" // reads and writes, causal and linearizable
	RoleReadOnly  Role = "readonly"  // reads only
	RoleNode      Role = "node"      // another node of the cluster: replication, forwarding, Raft
)

// ClientRoles are the roles a client certificate or token may carry.
var ClientRoles = []Role{RoleAdmin, RoleReadWrite, RoleReadOnly}

// ParseRole reads a client role.
func ParseRole(s string) (Role, error) {
	for _, r := range ClientRoles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: role %q: use admin, readwrite or readonly", ErrInvalid, s)
}

// Identity is who a certificate or token says its holder is.
type Identity struct {
	Role   Role
	Region string // nodes: the region the node serves
	Name   string // clients: the client's name
}

func (id Identity) String() string {
	if id.Role == RoleNode {
		return "node of region " + id.Region
	}
	return fmt.Sprintf("client %s (%s)", id.Name, id.Role)
}

var (
	// ErrInvalid reports a name, region, role or certificate that is not
	// well formed.
	ErrInvalid = errors.New("invalid")
	// ErrNoIdentity reports a certificate without a Causeway identity.
	ErrNoIdentity = errors.New("certificate carries no Causeway identity")
)

// names: regions and client names, as regions are named elsewhere
// (lowercase letters, digits, '-'), plus '.', '_' for client names.
var (
	regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

const scheme = "causeway"

func nodeURI(region string) *url.URL { return &url.URL{Scheme: scheme, Opaque: "node:" + region} }
func clientURI(name string, role Role) *url.URL {
	return &url.URL{Scheme: scheme, Opaque: "client:" + name + ":" + string(role)}
}

// Identify reads the identity of a certificate that has already been
// verified against the cluster CA (by the TLS handshake). A certificate
// with no causeway: URI, or with more than one, has none.
func Identify(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != scheme {
			continue
		}
		id, err := parseURI(u.Opaque)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
	default:
		return Identity{}, fmt.Errorf("%w: certificate carries %d identities", ErrInvalid, len(found))
	}
	id := found[0]
	// A node certificate must be usable by a node, a client one must not
	// pass for a node's: the key usages agree with the identity.
	if id.Role == RoleNode && !(hasUsage(cert, x509.ExtKeyUsageServerAuth) && hasUsage(cert, x509.ExtKeyUsageClientAuth)) {
		return Identity{}, fmt.Errorf("%w: node certificate without server and client authentication", ErrInvalid)
	}
	if id.Role != RoleNode && hasUsage(cert, x509.ExtKeyUsageServerAuth) {
		return Identity{}, fmt.Errorf("%w: client certificate valid for server authentication", ErrInvalid)
	}
	return id, nil
}

func parseURI(opaque string) (Identity, error) {
	parts := strings.Split(opaque, ":")
	switch {
	case len(parts) == 2 && parts[0] == "node" && regionName.MatchString(parts[1]):
		return Identity{Role: RoleNode, Region: parts[1]}, nil
	case len(parts) == 3 && parts[0] == "client" && clientName.MatchString(parts[1]):
		role, err := ParseRole(parts[2])
		if err != nil {
			return Identity{}, err
		}
		return Identity{Role: role, Name: parts[1]}, nil
	}
	return Identity{}, fmt.Errorf("%w: identity %s:%s", ErrInvalid, scheme, opaque)
}

func hasUsage(cert *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, have := range cert.ExtKeyUsage {
		if have == u {
			return true
		}
	}
	return false
}

type identityKey struct{}

// WithIdentity returns ctx carrying the authenticated caller of a request.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom is the authenticated caller of the request ctx belongs to;
// ok is false on a node without security (every caller is anonymous).
func IdentityFrom(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(Identity)
	return id, ok
}
