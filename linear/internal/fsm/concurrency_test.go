package fsm

import (
	"fmt"
	"sync"
	"testing"
)

// TestReadersDuringApply runs the methods the raft node calls from other
// goroutines (LastApplied, LatestToken, NextExpiryMs, Read, and a
// snapshot's Persist) while entries apply; run with -race. What readers
// see never goes back.
func TestReadersDuringApply(t *testing.T) {
	h := newHarness(t)
	history(h)
	snap, err := h.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	wg.Go(func() {
		var lastApplied, lastToken uint64
		for {
			select {
			case <-done:
				return
			default:
			}
			applied, token := h.m.LastApplied(), h.m.LatestToken("L")
			if applied < lastApplied || token < lastToken {
				errs <- "LastApplied or LatestToken went back"
				return
			}
			lastApplied, lastToken = applied, token
			h.m.NextExpiryMs()
			if res, err := h.m.Read(&Command{Op: OpGet, Key: "k"}); err != nil || res.Code != CodeOK {
				errs <- fmt.Sprintf("Read: %+v %v", res, err)
				return
			}
		}
	})
	wg.Go(func() {
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			errs <- "Persist: " + err.Error()
		}
	})
	for range 200 {
		lease := h.apply(grantCmd(1000)).LeaseID
		h.apply(lockCmd("L", lease, "o"))
		h.apply(putCmd("k", "v"))
		h.apply(unlockCmd("L", lease))
		h.apply(revokeCmd(lease))
	}
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
