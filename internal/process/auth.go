package process

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causewaydb/causeway/internal/pki"
)

// Security is what a process enforces with TLS on: its certificates (TLS
// on the API listener, mutual TLS to and from other nodes, the Raft
// transport) and the bearer tokens clients may use instead of a client
// certificate. A process without Security runs without TLS or
// authentication (`causeway serve` allows that on loopback, or when told
// --insecure).
type Security struct {
	Certs  *pki.Certs
	Tokens *pki.Tokens
}

// authorize lets a request through when its caller may make it: an open
// path (probes, health, reflection, metrics), or a caller identified by a
// client certificate of the cluster or a bearer token whose role the
// procedure's rule (rules) allows. Others get `unauthenticated` (no
// credential, or one not recognised) or `permission_denied` (a role that
// may not), in the caller's protocol, saying what was missing. The
// identity goes into the request's context (pki.IdentityFrom) for
// handlers that check more (replication checks the region).
func (s *Server) authorize(h http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	refuse := func(w http.ResponseWriter, r *http.Request, err *connect.Error) {
		s.refused.WithLabelValues(err.Code().String()).Inc()
		if errs.IsSupported(r) {
			_ = errs.Write(w, r, err)
			return
		}
		status := http.StatusUnauthorized
		if err.Code() == connect.CodePermissionDenied {
			status = http.StatusForbidden
		}
		http.Error(w, err.Message(), status)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		id, err := s.identify(r)
		if err != nil {
			refuse(w, r, connect.NewError(connect.CodeUnauthenticated, err))
			return
		}
		if !allowed(r.URL.Path, id.Role) {
			refuse(w, r, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%v may not call %s: %s",
				id, r.URL.Path, describeRoles(r.URL.Path))))
			return
		}
		h.ServeHTTP(w, r.WithContext(pki.WithIdentity(r.Context(), id)))
	})
}

// identify reads who the caller is: a verified client certificate first,
// else a bearer token.
func (s *Server) identify(r *http.Request) (pki.Identity, error) {
	if id, ok := pki.PeerIdentity(r.TLS); ok {
		return id, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return pki.Identity{}, errors.New("this node requires a client certificate of its cluster or a bearer token (causeway --certs-dir DIR --client NAME, or --token; Authorization: Bearer TOKEN)")
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return pki.Identity{}, errors.New("the Authorization header must be `Bearer TOKEN`")
	}
	if s.security.Tokens == nil {
		return pki.Identity{}, errors.New("this node accepts no bearer tokens (it has no tokens.json)")
	}
	return s.security.Tokens.Authenticate(strings.TrimSpace(token))
}

func describeRoles(path string) string {
	roles, ok := rules[path]
	if !ok {
		return "it needs the admin role"
	}
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		if r != pki.RoleNode {
			names = append(names, string(r))
		}
	}
	if len(names) == 0 {
		return "only other nodes of the cluster may"
	}
	return "it needs the role " + strings.Join(names, " or ")
}

// certExpiry reports when the node's certificate and the cluster CA
// expire, so that an alert can fire well before (deploy/prometheus).
type certExpiry struct {
	certs *pki.Certs
	desc  *prometheus.Desc
}

func newCertExpiry(certs *pki.Certs, region string) *certExpiry {
	return &certExpiry{certs: certs, desc: prometheus.NewDesc("causeway_certificate_expiry_timestamp_seconds",
		"When a certificate in use expires (Unix time): cert=node (this node's) or ca (the cluster CA).",
		[]string{"cert"}, prometheus.Labels{"region": region})}
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	node, ca := c.certs.Expiry()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(node.Unix()), "node")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(ca.Unix()), "ca")
}
