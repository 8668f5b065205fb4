package linear

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/internal/logbridge"
	"github.com/causewaydb/causeway/linear/internal/fsm"
	"github.com/causewaydb/causeway/linear/internal/logstore"
)

// Node is one node's part of the linearizable tier: a Raft voter with its
// state machine, or (RoleForwarder) only the forwarding to voters.
type Node struct {
	cfg    Config
	log    *slog.Logger
	timing timing

	// Voters only.
	id        raft.ServerID // this voter's Raft server id (see identity.go)
	raft      *raft.Raft
	machine   *fsm.Machine
	logs      *logstore.Store
	transport *voteGuard
	reach     reach
	promotion promotion
	// unapproved: regions the leader refused to add (voters.go), for the
	// log and Status.
	unapproved struct {
		mu     sync.Mutex
		logged map[string]time.Time
	}

	stop chan struct{}
	wg   sync.WaitGroup
}

// snapshotsRetained is how many Raft snapshots stay on disk.
const snapshotsRetained = 2

// Open starts the node's part of the tier. A voter opens its stores,
// listens on BindAddr and joins (or, with Bootstrap and no prior state,
// forms) the Raft group.
func Open(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("linear tier: %w", err)
	}
	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "linear"),
		timing: timingFor(cfg.MaxRoundTrip),
		stop:   make(chan struct{}),
	}
	if cfg.Role == RoleForwarder {
		n.log.Info("linearizable tier: forwarding to voters")
		return n, nil
	}
	if err := n.openVoter(); err != nil {
		n.closeStores()
		return nil, err
	}
	n.reach.unreachable = map[raft.ServerID]bool{}
	n.wg.Add(3)
	go n.membershipLoop()
	go n.expiryLoop()
	go n.watchReach()
	return n, nil
}

func (n *Node) openVoter() error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("linear tier: %w", err)
	}
	var err error
	if n.logs, err = logstore.Open(filepath.Join(cfg.Dir, "raft-log"), vfs.Default, n.log); err != nil {
		return fmt.Errorf("linear tier: raft log: %w", err)
	}
	if n.machine, err = fsm.Open(filepath.Join(cfg.Dir, "state"), vfs.Default, n.log); err != nil {
		return fmt.Errorf("linear tier: state machine: %w", err)
	}
	hlog := logbridge.Hclog(n.log, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetained, hlog)
	if err != nil {
		return fmt.Errorf("linear tier: snapshots: %w", err)
	}
	if n.id, err = n.loadServerID(snaps); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("linear tier: listen on %s: %w", cfg.BindAddr, err)
	}
	if _, port, _ := net.SplitHostPort(cfg.Advertise); port == "0" {
		// Any free port was asked for: announce the one chosen.
		n.cfg.Advertise = ln.Addr().String()
		cfg.Advertise = n.cfg.Advertise
	}
	n.transport = newVoteGuard(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  newStreamLayer(ln, cfg.Links, cfg.Peers, cfg.TLS),
		MaxPool: 3,
		// Pipelined (pipelineDepth requests in flight per follower), each
		// send bounded by the vote guard (guard.go, AppendEntriesPipeline):
		// raft v1.8's pipeline can hang when a follower's link black-holes,
		// and stop-and-wait replication made a claim from the leader's own
		// region wait behind the request in flight (2.1x its floor).
		MaxRPCsInFlight: pipelineDepth,
		// I/O deadline of one transport RPC. A black-holed link must not
		// hold a connection longer than an election takes.
		Timeout: n.timing.heartbeat,
		Logger:  hlog,
	}), n.id, n.timing.heartbeat)

	rc := raft.DefaultConfig()
	rc.LocalID = n.id
	rc.HeartbeatTimeout = n.timing.heartbeat
	rc.ElectionTimeout = n.timing.heartbeat
	rc.LeaderLeaseTimeout = n.timing.lease
	// CommitTimeout is how often an idle leader sends followers an
	// AppendEntries carrying only the commit index. Once per round trip is
	// enough: followers learn commits a little later, which costs nothing
	// here because every read goes through the leader's log. (When
	// replication was stop-and-wait, that message also held the follower's
	// only slot for a round trip; with the pipeline it delays nothing.)
	rc.CommitTimeout = max(20*time.Millisecond, cfg.MaxRoundTrip)
	rc.SnapshotThreshold = 8192
	rc.TrailingLogs = 10240
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		n.transport.Close()
		return fmt.Errorf("linear tier: %w", err)
	}

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(n.logs, n.logs, snaps)
		if err != nil {
			n.transport.Close()
			return fmt.Errorf("linear tier: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.Advertise),
			}}}
			if err := raft.BootstrapCluster(rc, n.logs, n.logs, snaps, n.transport, conf); err != nil {
				n.transport.Close()
				return fmt.Errorf("linear tier: bootstrap: %w", err)
			}
			n.log.Info("linearizable tier bootstrapped: this region is its first voter")
		}
	}
	if n.raft, err = raft.NewRaft(rc, n.machine, n.logs, n.logs, snaps, n.transport); err != nil {
		n.transport.Close()
		return fmt.Errorf("linear tier: %w", err)
	}
	n.transport.raft.Store(n.raft)
	n.log.Info("linearizable tier: voter started", "server_id", n.id, "raft_addr", cfg.Advertise,
		"heartbeat_timeout", n.timing.heartbeat, "leader_lease", n.timing.lease)
	return nil
}

// Close stops Raft and closes the stores.
func (n *Node) Close() error {
	close(n.stop)
	n.wg.Wait()
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	errs = append(errs, n.closeStores())
	return errors.Join(errs...)
}

func (n *Node) closeStores() error {
	var errs []error
	if n.machine != nil {
		errs = append(errs, n.machine.Close())
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	return errors.Join(errs...)
}

// Voter reports whether this node runs a Raft voter.
func (n *Node) Voter() bool { return n.raft != nil }

// RaftAddr is the address this voter announces ("" for a forwarder).
func (n *Node) RaftAddr() string {
	if n.raft == nil {
		return ""
	}
	return n.cfg.Advertise
}

// ServerID is this voter's Raft server id ("" for a forwarder): its region,
// a slash and a suffix chosen when its Raft state was created.
func (n *Node) ServerID() string { return string(n.id) }

// LatestToken is the newest fencing token for lock this node's state
// machine has applied (0 for a forwarder or an unknown lock). It may lag
// the leader; it never runs ahead of what was issued.
func (n *Node) LatestToken(lock string) (uint64, error) {
	if n.machine == nil {
		return 0, nil
	}
	return n.machine.ReadLatestToken(lock)
}

// isLeader reports whether this node is the Raft leader now.
func (n *Node) isLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

// apply runs cmd through the log on this node, which must lead. The result
// is the state machine's. An error means the outcome is unknown (the entry
// may or may not have been committed): it says so, and to retry with the
// same request id.
func (n *Node) apply(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	cmd.NowMs = n.cfg.Now().UnixMilli()
	timeout := n.timing.call
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	f := n.raft.Apply(cmd.Encode(), timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, n.applyError(err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w; the request may or may not have been applied: retry with the same request_id to learn its outcome",
			ctx.Err())
	case <-timer.C:
		return nil, n.unavailable("no commit within %v; the request may or may not have been applied: retry with the same request_id to learn its outcome",
			timeout)
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok || res == nil {
		return nil, fmt.Errorf("linear tier: state machine returned %T for a command", f.Response())
	}
	return res, nil
}

func (n *Node) applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		// Not appended: nothing happened.
		return n.unavailable("this node stopped leading before the request was logged; retry")
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return n.unavailable("leadership lost while the request was in flight; it may or may not have been applied: retry with the same request_id to learn its outcome")
	case errors.Is(err, raft.ErrRaftShutdown):
		return n.unavailable("this node is shutting down; retry on another region")
	default:
		return fmt.Errorf("linear tier: apply: %w", err)
	}
}

// expiryLoop, on the leader, records the passing of time in the log when a
// lease is due to expire, so every replica expires it at the same entry.
func (n *Node) expiryLoop() {
	defer n.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if !n.isLeader() {
			continue
		}
		due, ok := n.machine.NextExpiryMs()
		if !ok || due > n.cfg.Now().UnixMilli() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.timing.call)
		if _, err := n.apply(ctx, &fsm.Command{Op: fsm.OpTick}); err != nil {
			n.log.Debug("linearizable tier: lease expiry tick", "err", err)
		}
		cancel()
	}
}
