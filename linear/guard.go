package linear

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// voteGuard is the Raft transport with one rule added: this node answers
// votes (RequestVote, RequestPreVote) and leadership transfers (TimeoutNow)
// only while its own server id is a voter of its latest configuration.
//
// Why: Raft addresses servers by address, and a region that lost its data
// directory restarts at the address of its old server id under a new one.
// A candidate's RequestVote meant for the old id then reaches the new
// node, and Raft counts the answer as the old id's vote. The new node has
// an empty log and no memory of the old id's vote: granting it is exactly
// issue 21 (a stale follower elected, acknowledged writes lost). hashicorp
// raft grants votes from a node with an empty configuration, and carries no
// target id in a request to check, so the rule is enforced here. A voter
// always finds itself in its configuration (Raft restores it from the log
// at start), so the rule costs it nothing; a new member votes once the
// leader has promoted it, by which time its log has caught up.
type voteGuard struct {
	*raft.NetworkTransport
	// sendLimit bounds one pipelined send (see boundedPipeline).
	sendLimit time.Duration
	self      raft.ServerID
	raft      atomic.Pointer[raft.Raft]
	out       chan raft.RPC
	stop      chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

func newVoteGuard(t *raft.NetworkTransport, self raft.ServerID, sendLimit time.Duration) *voteGuard {
	g := &voteGuard{NetworkTransport: t, sendLimit: sendLimit, self: self, out: make(chan raft.RPC), stop: make(chan struct{})}
	g.wg.Add(1)
	go g.run(t.Consumer())
	return g
}

// Consumer is what Raft reads RPCs from: the transport's, less the votes
// this node must not give.
func (g *voteGuard) Consumer() <-chan raft.RPC { return g.out }

// Close closes the transport and stops the guard. It may be called more
// than once (Raft's Shutdown closes the transport too).
func (g *voteGuard) Close() error {
	g.once.Do(func() { close(g.stop) })
	err := g.NetworkTransport.Close()
	g.wg.Wait()
	return err
}

func (g *voteGuard) run(in <-chan raft.RPC) {
	defer g.wg.Done()
	for {
		var rpc raft.RPC
		select {
		case <-g.stop:
			return
		case rpc = <-in:
		}
		if g.refuse(rpc) {
			continue
		}
		select {
		case <-g.stop:
			return
		case g.out <- rpc:
		}
	}
}

// errNotVoter answers a leadership transfer to a node that does not vote.
var errNotVoter = errors.New("this server is not a voter of its latest configuration (a new member catching up, or a removed one)")

// refuse answers rpc itself, without granting, if it asks for a vote that
// this node must not give.
func (g *voteGuard) refuse(rpc raft.RPC) bool {
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		if !g.voter() {
			rpc.Respond(&raft.RequestVoteResponse{RPCHeader: g.header(), Term: req.Term}, nil)
			return true
		}
	case *raft.RequestPreVoteRequest:
		if !g.voter() {
			rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: g.header(), Term: req.Term}, nil)
			return true
		}
	case *raft.TimeoutNowRequest:
		if !g.voter() {
			rpc.Respond(nil, errNotVoter)
			return true
		}
	}
	return false
}

// voter reports whether this node's id is a voter of its latest
// configuration. Until Raft runs it is not.
func (g *voteGuard) voter() bool {
	r := g.raft.Load()
	if r == nil {
		return false
	}
	cf := r.GetConfiguration() // answered from a cached copy: never blocks
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == g.self {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

func (g *voteGuard) header() raft.RPCHeader {
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(g.self),
		Addr:            g.EncodePeer(g.self, g.LocalAddr()),
	}
}

// pipelineDepth is how many AppendEntries may be in flight to one
// follower. With one (no pipelining) replication to a follower is
// stop-and-wait: an entry appended while an AppendEntries is in flight
// waits for its answer, up to a round trip, so when several regions'
// requests reach the leader at once a claim from the leader's own region
// took two round trips to its nearest voter instead of one (2.1x its floor
// under aws3).
const pipelineDepth = 16

// AppendEntriesPipeline returns the transport's pipeline with every send
// bounded by sendLimit. raft v1.8's pipeline can hang when a follower's
// link black-holes: the response decoder, its consumer gone, blocks handing
// over a failed response, and the sender then blocks forever handing the
// decoder its next request (seen in TestMinorityFailsFastWithReason). A
// send that has not returned within sendLimit closes the pipeline, which
// unblocks it with an error; Raft then falls back to one request at a
// time, whose every RPC has a deadline.
func (g *voteGuard) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := g.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &boundedPipeline{AppendPipeline: p, limit: g.sendLimit}, nil
}

type boundedPipeline struct {
	raft.AppendPipeline
	limit time.Duration
}

func (p *boundedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	t := time.AfterFunc(p.limit, func() { _ = p.AppendPipeline.Close() })
	defer t.Stop()
	return p.AppendPipeline.AppendEntries(args, resp)
}
