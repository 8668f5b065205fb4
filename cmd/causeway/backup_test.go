//go:build unix

package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/replica"
)

// ackedWrite is a write a region acknowledged: where it sits in its
// origin's sequence, and its value.
type ackedWrite struct {
	origin string
	seq    uint64
	value  string
}

// TestBackupUnderWritesRestoresAndCatchesUp takes a backup of a region
// while clients write to it and to another region, keeps writing after it,
// then loses the region and restores it from the backup the README's way
// (causeway restore, then serve --join). The restored directory must hold,
// byte for byte, every acknowledged write the backup's vector names; the
// restored region must then take back from the others every write it lacks,
// its own later ones included (not refuse as a region that lost writes),
// serve, continue its sequence after all of them, and converge.
func TestBackupUnderWritesRestoresAndCatchesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := newRejoinCluster(t, ctx)
	ap := c.regions["ap-south"]

	var (
		mu      sync.Mutex
		acked   = map[string]ackedWrite{}
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		stopped sync.Once
	)
	halt := func() { stopped.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	writer := func(region string, w int) {
		r := c.regions[region]
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key, value := fmt.Sprintf("w/%s/%d/%05d", region, w, i), fmt.Sprintf("%s writer %d value %d", region, w, i)
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := r.kv.Put(rctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(value)}))
			rcancel()
			if err != nil {
				t.Errorf("put %s in %s: %v", key, region, err)
				return
			}
			mu.Lock()
			acked[key] = ackedWrite{origin: res.Msg.GetVersion().GetOriginRegion(), seq: res.Msg.GetVersion().GetOriginSeq(), value: value}
			mu.Unlock()
		}
	}
	for w := range 3 {
		wg.Go(func() { writer("ap-south", w) })
	}
	wg.Go(func() { writer("us-east", 0) })
	pollUntil(t, 30*time.Second, "60 acknowledged writes before the backup", func() bool { return count() >= 60 })

	// ap-south's own writes acknowledged before the backup begins are in
	// it, whatever replication has brought from us-east by then.
	mu.Lock()
	var ownBefore []string
	for key, w := range acked {
		if w.origin == "ap-south" {
			ownBefore = append(ownBefore, key)
		}
	}
	mu.Unlock()
	dir := filepath.Join(t.TempDir(), "backup")
	r := runCLI("", "backup", "--addr", ap.url, "--out", dir)
	if r.code != exitOK {
		t.Fatalf("backup under writes: %v", r)
	}
	atBackup := count()
	pollUntil(t, 30*time.Second, "60 more acknowledged writes after the backup", func() bool { return count() >= atBackup+60 })
	halt()
	if t.Failed() {
		return
	}
	m, err := readBackupManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	vec := m.GetVector()
	if m.GetRegion() != "ap-south" || m.GetClusterId() != c.id || vec["ap-south"] == 0 {
		t.Fatalf("manifest names region %q cluster %q vector %v; want ap-south of %s with some of its writes", m.GetRegion(), m.GetClusterId(), vec, c.id)
	}
	all := c.awaitConverged(60 * time.Second)
	if vec["ap-south"] >= all["ap-south"] {
		t.Fatalf("the backup's vector %v already holds every write of ap-south (%v): the test wrote nothing after it", vec, all)
	}
	t.Logf("backup at vector %v (%d files); %d writes acknowledged in all, converged at %v", vec, len(m.GetFiles()), count(), all)

	// A corrupted copy of the backup is refused, and nothing is written.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.CopyFS(bad, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	largest := m.GetFiles()[0]
	for _, f := range m.GetFiles() {
		if f.GetSizeBytes() > largest.GetSizeBytes() {
			largest = f
		}
	}
	victim := filepath.Join(bad, backupStoreDir, filepath.FromSlash(largest.GetPath()))
	raw, err := os.ReadFile(victim)
	if err != nil || len(raw) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", victim, err, len(raw))
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(victim, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	badData := filepath.Join(t.TempDir(), "bad-data")
	if r := runCLI("", "restore", bad, "--data", badData); r.code != exitFailed || !strings.Contains(r.stderr, "backup is corrupted") ||
		!strings.Contains(r.stderr, "SHA-256") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("restore of a corrupted backup: %v; want it refused, naming the checksum", r)
	}
	if _, err := os.Stat(badData); !os.IsNotExist(err) {
		t.Errorf("restore of a corrupted backup created %s (%v)", badData, err)
	}

	// The region's disk is lost; it is restored from the backup.
	c.procs.kill("ap-south")
	if err := os.RemoveAll(ap.dataDir); err != nil {
		t.Fatal(err)
	}
	if r := runCLI("", "restore", dir, "--data", ap.dataDir); r.code != exitOK || !strings.Contains(r.stdout, "--join") {
		t.Fatalf("restore: %v", r)
	}
	// Before it starts, the restored store holds every acknowledged write
	// the backup's vector names, byte for byte.
	store, err := replica.OpenStore(ap.dataDir, replica.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	for key, w := range acked {
		if w.seq > vec[w.origin] {
			continue
		}
		covered++
		versions, err := store.Siblings(key, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) == 0 || string(versions[0].Value) != w.value {
			t.Errorf("restored store lacks %s (%s write %d, within the backup's vector %v): %v", key, w.origin, w.seq, vec, versions)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range ownBefore {
		if w := acked[key]; w.seq > vec["ap-south"] {
			t.Errorf("%s, ap-south's write %d acknowledged before the backup began, is outside the backup's vector %v", key, w.seq, vec)
		}
	}
	if len(ownBefore) == 0 || covered < len(ownBefore) {
		t.Fatalf("%d acknowledged writes fall within the backup's vector %v, %d of ap-south's before it began; want them all and some", covered, vec, len(ownBefore))
	}

	c.start("ap-south", c.gossipAddr("us-east"))
	c.awaitServing(60*time.Second, "ap-south")
	if st := ap.status(t); st.GetCausalState() != "serving" || st.GetVector()["ap-south"] != all["ap-south"] {
		t.Errorf("restored region serves at vector %v; want it to have taken back its %d writes", st.GetVector(), all["ap-south"])
	}
	after, _ := c.putChain("ap-south", "after-restore", 20, "")
	final := c.awaitConverged(60 * time.Second)
	if want := all["ap-south"] + 20; final["ap-south"] != want {
		t.Errorf("converged vector %v; want ap-south's writes to continue its sequence to %d", final, want)
	}
	written := map[string]string{}
	for key, w := range acked {
		written[key] = w.value
	}
	maps.Copy(written, after)
	c.checkHeld(written, "")
}
