//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// ackedPut is a Put the node acknowledged: from then on it must survive any crash.
type ackedPut struct {
	key, value, requestID string
	version               *v1.Version
}

// TestSIGKILLLosesNoAcknowledgedWrite is the durability promise end to end: a
// real `causeway serve` process is sent SIGKILL while writes are in flight,
// after acknowledging at least minAcks of them; restarted on the same data
// directory it has every acknowledged write, with the version it
// acknowledged, and its clock, sequence numbers and request ids resume where
// they were.
func TestSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills causeway serve processes")
	}
	const (
		region  = "crash"
		writers = 16
		minAcks = 2000
	)
	// A bound on a hang, not on speed: under -race on a loaded 2-core
	// machine the writes, the restart and the 2000 reads take well over a
	// minute.
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	procs := newServeRegions(t)
	procs.add(region, dataDir)

	firstURL := procs.start(ctx, region)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}}
	t.Cleanup(client.CloseIdleConnections)
	kv := causewayv1connect.NewKVServiceClient(client, firstURL)

	// Each writer is one client session: it writes distinct keys in a loop,
	// carrying its causal token, until a request fails. Failures after the
	// kill are expected and are not acknowledged writes.
	var (
		mu         sync.Mutex
		acks       []ackedPut
		lastTokens = map[string]string{} // key of each writer's last ack -> token it returned
		unexpected []error
		killed     atomic.Bool
		inFlight   atomic.Int64
		enough     = make(chan struct{})
		enoughOnce sync.Once
		wg         sync.WaitGroup
	)
	writeCtx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	for w := range writers {
		wg.Go(func() {
			token, lastKey := "", ""
			defer func() {
				if lastKey != "" {
					mu.Lock()
					lastTokens[lastKey] = token
					mu.Unlock()
				}
			}()
			for i := 0; ; i++ {
				key := fmt.Sprintf("crash/w%02d/%06d", w, i)
				value := fmt.Sprintf("value %d of writer %d: %s", i, w, uuid.NewString())
				reqID := uuid.NewString()
				inFlight.Add(1)
				res, err := kv.Put(writeCtx, connect.NewRequest(&v1.PutRequest{
					Key: key, Value: []byte(value), CausalToken: token, RequestId: reqID,
				}))
				inFlight.Add(-1)
				if err != nil {
					if !killed.Load() {
						mu.Lock()
						unexpected = append(unexpected, fmt.Errorf("put %s before the kill: %w", key, err))
						mu.Unlock()
					}
					return
				}
				token, lastKey = res.Msg.GetCausalToken(), key
				mu.Lock()
				acks = append(acks, ackedPut{key: key, value: value, requestID: reqID, version: res.Msg.GetVersion()})
				n := len(acks)
				mu.Unlock()
				if n >= minAcks {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	select {
	case <-enough:
	case <-writersDone:
		t.Fatalf("every writer stopped before %d writes were acknowledged: %v", minAcks, errors.Join(unexpected...))
	case <-ctx.Done():
		t.Fatalf("%d writes were not acknowledged in time: %v", minAcks, ctx.Err())
	}
	killed.Store(true)
	inFlightAtKill := inFlight.Load()
	killErr := procs.sup.Kill(region) // nil only if the SIGKILL ended it
	stopWriters()
	<-writersDone
	client.CloseIdleConnections()

	if killErr != nil {
		t.Fatalf("first node: %v; want death by SIGKILL", killErr)
	}
	if len(unexpected) > 0 {
		t.Fatalf("writes failed before the kill: %v", errors.Join(unexpected...))
	}
	if inFlightAtKill == 0 {
		t.Fatalf("no write was in flight at the kill; the test did not crash the node mid-write")
	}
	t.Logf("SIGKILL after %d acknowledged writes, %d in flight", len(acks), inFlightAtKill)

	// The acknowledgements themselves must be consistent before they can be
	// checked against the restarted node.
	var maxSeq uint64
	var maxTS *v1.Timestamp
	seqs := make(map[uint64]string, len(acks))
	for _, a := range acks {
		v := a.version
		if v.GetOriginRegion() != region || v.GetOriginSeq() == 0 || v.GetTimestamp().GetWallMs() == 0 {
			t.Fatalf("put %s acknowledged with version %v; want origin %s, a sequence number and a timestamp", a.key, v, region)
		}
		if other, dup := seqs[v.GetOriginSeq()]; dup {
			t.Fatalf("puts %s and %s were both acknowledged with sequence number %d", other, a.key, v.GetOriginSeq())
		}
		seqs[v.GetOriginSeq()] = a.key
		maxSeq = max(maxSeq, v.GetOriginSeq())
		if maxTS == nil || timestampLess(maxTS, v.GetTimestamp()) {
			maxTS = v.GetTimestamp()
		}
	}

	secondURL := procs.start(ctx, region)
	kv = causewayv1connect.NewKVServiceClient(client, secondURL)
	admin := causewayv1connect.NewAdminServiceClient(client, secondURL)

	// Every acknowledged write is there, with the version acknowledged. A
	// sample of them is retried with its request id, which must return that
	// same version instead of writing again: the last acknowledgements before
	// the kill, whose fsyncs were the most recent, and a spread of the rest
	// (retrying all of them doubles the test's time under -race and adds
	// little).
	retry := make(map[string]bool)
	for i, a := range acks {
		if i%25 == 0 || i >= len(acks)-4*writers {
			retry[a.key] = true
		}
	}
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	forEachConcurrently(writers, acks, func(a ackedPut) {
		got, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: a.key}))
		switch {
		case err != nil:
			report("get %s after restart: %v", a.key, err)
		case !got.Msg.GetFound():
			report("get %s after restart: not found; it was acknowledged with version %v", a.key, a.version)
		case !bytes.Equal(got.Msg.GetValue(), []byte(a.value)):
			report("get %s after restart: value %q, acknowledged %q", a.key, got.Msg.GetValue(), a.value)
		case !proto.Equal(got.Msg.GetVersion(), a.version):
			report("get %s after restart: version %v, acknowledged %v", a.key, got.Msg.GetVersion(), a.version)
		}
		if !retry[a.key] {
			return
		}
		again, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: a.key, Value: []byte(a.value), RequestId: a.requestID}))
		switch {
		case err != nil:
			report("retry put %s (request id %s) after restart: %v", a.key, a.requestID, err)
		case !proto.Equal(again.Msg.GetVersion(), a.version):
			report("retry put %s (request id %s) after restart: version %v, the original was acknowledged with %v",
				a.key, a.requestID, again.Msg.GetVersion(), a.version)
		}
	})
	if len(problems) > 0 {
		const show = 20
		t.Errorf("%d of %d acknowledged writes are wrong after the restart; first ones:\n%s",
			len(problems), len(acks), joinFirst(problems, show))
	}

	// A session's token from before the crash is served after it: the node
	// restored the causal past it had acknowledged.
	sessions := make([][2]string, 0, len(lastTokens))
	for key, token := range lastTokens {
		sessions = append(sessions, [2]string{key, token})
	}
	forEachConcurrently(writers, sessions, func(s [2]string) {
		key, token := s[0], s[1]
		got, err := kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token}))
		if err != nil {
			t.Errorf("get %s with the token its put returned before the crash: %v", key, err)
		} else if !got.Msg.GetFound() {
			t.Errorf("get %s with the token its put returned before the crash: not found", key)
		}
	})

	status, err := admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		t.Fatalf("status after restart: %v", err)
	}
	applied := status.Msg.GetVector()[region]
	if status.Msg.GetRegion() != region || applied < maxSeq {
		t.Errorf("status after restart: region %q, vector %v; want region %s with %s >= %d (greatest acknowledged sequence number)",
			status.Msg.GetRegion(), status.Msg.GetVector(), region, region, maxSeq)
	}

	// Clock and sequence resume: a new write orders after every acknowledged
	// one, and takes the next sequence number (other regions apply an
	// origin's writes in sequence order, so a gap would stall them).
	fresh, err := kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: "crash/after-restart", Value: []byte("new")}))
	if err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	v := fresh.Msg.GetVersion()
	if v.GetOriginSeq() != applied+1 {
		t.Errorf("put after restart got sequence number %d; want %d, next after the restored vector (greatest acknowledged: %d)",
			v.GetOriginSeq(), applied+1, maxSeq)
	}
	if !timestampLess(maxTS, v.GetTimestamp()) {
		t.Errorf("put after restart got timestamp %v, not after the greatest acknowledged one %v", v.GetTimestamp(), maxTS)
	}
}

func timestampLess(a, b *v1.Timestamp) bool {
	if a.GetWallMs() != b.GetWallMs() {
		return a.GetWallMs() < b.GetWallMs()
	}
	return a.GetLogical() < b.GetLogical()
}

// forEachConcurrently calls f for every item from n goroutines.
func forEachConcurrently[T any](n int, items []T, f func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for item := range work {
				f(item)
			}
		})
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
}

func joinFirst(lines []string, n int) string {
	var b bytes.Buffer
	for i, l := range lines {
		if i == n {
			fmt.Fprintf(&b, "... and %d more\n", len(lines)-n)
			break
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
