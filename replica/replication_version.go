package replica

import (
	"errors"

	"connectrpc.com/connect"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// The version exchange at the start of every replication stream
// (version.go states the rule). Both sides of a refused stream count it,
// log it and keep it for Status, so an operator sees which region runs a
// release too far apart; the follower retries with its usual backoff, so
// the stream starts by itself once that region is upgraded.

// peerVersion is what the last stream with a region said about versions.
type peerVersion struct {
	protocol uint32 // the version of the last stream from that region
	refused  string // why the last stream was refused; "" once one is accepted
}

// protocolsProto is the range this node sends when it opens a stream.
func (r *replication) protocolsProto() *v1.ProtocolVersions {
	p := r.n.cfg.protocols
	return &v1.ProtocolVersions{Min: p.min, Max: p.max}
}

// agree is the serving side: it returns the version a stream with region
// speaks, or the refusal the caller gets (failed_precondition, with this
// node's range as a ProtocolVersions detail).
func (r *replication) agree(region string, theirs *v1.ProtocolVersions) (uint32, error) {
	mine := r.n.cfg.protocols
	caller := peerRange(theirs.GetMin(), theirs.GetMax())
	if v, ok := negotiate(mine, caller); ok {
		r.mu.Lock()
		if pv := r.versions[region]; pv.refused != "" {
			r.versions[region] = peerVersion{protocol: pv.protocol}
		}
		r.mu.Unlock()
		return v, nil
	}
	err := api.Errorf(ErrUnsupportedVersion,
		"region %s speaks replication protocol %s and region %s (this node) speaks %s: no version in common; "+
			"upgrade the older region (releases N and N+1 interoperate; upgrade one release at a time)",
		region, caller, r.n.cfg.Region, mine)
	r.refuse(region, err)
	return 0, api.ConnectError(api.WithDetails(err, &v1.ProtocolVersions{Min: mine.min, Max: mine.max}))
}

// checkAnswer is the following side: the version the server chose must be
// one this node speaks (a server of an older release that does not know
// this node's range could choose one it cannot read).
func (r *replication) checkAnswer(region string, answered uint32) error {
	v := streamVersion(answered)
	mine := r.n.cfg.protocols
	if v < mine.min || v > mine.max {
		err := api.Errorf(ErrUnsupportedVersion,
			"region %s answered with replication protocol version %d and region %s (this node) speaks %s: "+
				"upgrade the older region (releases N and N+1 interoperate; upgrade one release at a time)",
			region, v, r.n.cfg.Region, mine)
		r.refuse(region, err)
		return err
	}
	r.mu.Lock()
	if _, ok := r.versions[region]; ok || len(r.versions) < maxVersionRecords {
		r.versions[region] = peerVersion{protocol: v}
	}
	r.mu.Unlock()
	return nil
}

// refusedByServer reports whether err is a server's refusal of this node's
// protocol versions, and records it.
func (r *replication) refusedByServer(region string, err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return false
	}
	for _, d := range ce.Details() {
		if m, derr := d.Value(); derr == nil {
			if _, ok := m.(*v1.ProtocolVersions); ok {
				r.refuse(region, err)
				return true
			}
		}
	}
	return false
}

// maxVersionRecords bounds the regions whose versions are kept for Status:
// a caller that names regions at random (it must know the cluster id)
// cannot grow the map without bound. Beyond it a refusal is still counted
// and logged.
const maxVersionRecords = 256

func (r *replication) refuse(region string, err error) {
	r.n.metrics.versionRefusals.Inc()
	r.n.log.Warn("replication refused: no protocol version in common", "peer", region, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.versions[region]; ok || len(r.versions) < maxVersionRecords {
		r.versions[region] = peerVersion{refused: err.Error()}
	}
}
