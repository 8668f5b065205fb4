package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
	"github.com/causewaydb/causeway/replica"
)

// A backup directory holds manifest.json (a v1.BackupManifest in protojson)
// and store/, the files of a Pebble checkpoint of the region's store. The
// manifest is written last, after every file was checked against it: a
// directory without one is an unfinished backup.
const (
	backupManifestName = "manifest.json"
	backupStoreDir     = "store"
)

// errCorruptBackup: a backup's files do not match its manifest.
var errCorruptBackup = errors.New("backup is corrupted")

const backupUsage = `Usage: causeway backup --addr NODE --out DIR [flags]

Takes an online, consistent backup of NODE's region: a checkpoint of its store
at one applied vector, streamed to DIR on this machine, with a manifest
(cluster id, region, vector, the linearizable tier's state, the SHA-256 of
every file). The node keeps serving. DIR must not exist or be empty.

Flags:
`

const restoreUsage = `Usage: causeway restore DIR --data DATADIR

Checks every file of the backup in DIR against its manifest, then prepares
DATADIR (which must not exist or be empty) to be started as the backup's
region. Nothing is written when a file is missing, extra or corrupted.

Start the region on DATADIR with --join (a live region's gossip address): it
then takes back from the other regions every write it lacks, its own included,
before it serves. See README, "Backup and restore".

Flags:
`

func runBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("CAUSEWAY_ADDR", "http://127.0.0.1:7070"), "node URL (env CAUSEWAY_ADDR)")
	out := fs.String("out", "", "directory to write the backup into (must not exist or be empty); required")
	timeout := fs.Duration("timeout", 30*time.Minute, "deadline of the whole backup")
	creds := addCredentialFlags(fs)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "causeway backup: --out DIR is required")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	httpc, err := creds.httpClient()
	if err != nil {
		fmt.Fprintf(stderr, "causeway backup: %v\n", err)
		return exitUsage
	}
	m, bytes, err := backup(ctx, httpc, creds.url(*addr), *out)
	if err != nil {
		fmt.Fprintf(stderr, "causeway backup: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "backup of region %s (cluster %s) in %s\nvector %s\n%d files, %d bytes\n",
		m.GetRegion(), m.GetClusterId(), *out, vectorString(m.GetVector()), len(m.GetFiles()), bytes)
	return exitOK
}

// backup streams a backup from the node at base into dir and returns its
// manifest and the bytes received.
func backup(ctx context.Context, httpc *http.Client, base, dir string) (*v1.BackupManifest, uint64, error) {
	if err := requireEmptyDir(dir); err != nil {
		return nil, 0, err
	}
	storeDir := filepath.Join(dir, backupStoreDir)
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, 0, err
	}
	admin := causewayv1connect.NewAdminServiceClient(httpc, base)
	stream, err := admin.Backup(ctx, connect.NewRequest(&v1.BackupRequest{}))
	if err != nil {
		return nil, 0, err
	}
	defer stream.Close()
	var (
		m     *v1.BackupManifest
		want  = map[string]*v1.BackupFile{}
		cur   *os.File
		name  string
		next  uint64
		total uint64
	)
	closeCur := func() error {
		if cur == nil {
			return nil
		}
		err := errors.Join(cur.Sync(), cur.Close())
		cur = nil
		return err
	}
	defer closeCur()
	for stream.Receive() {
		msg := stream.Msg()
		if mm := msg.GetManifest(); mm != nil {
			if m != nil {
				return nil, 0, errors.New("the node sent a second manifest")
			}
			if mm.GetFormatVersion() != replica.BackupFormatVersion {
				return nil, 0, fmt.Errorf("the node sends backups of format version %d; this causeway reads version %d: use the node's causeway binary",
					mm.GetFormatVersion(), replica.BackupFormatVersion)
			}
			for _, f := range mm.GetFiles() {
				if err := checkBackupPath(f.GetPath()); err != nil {
					return nil, 0, err
				}
				want[f.GetPath()] = f
			}
			m = mm
			continue
		}
		chunk := msg.GetFile()
		if m == nil || chunk == nil {
			return nil, 0, errors.New("the node's backup stream does not start with a manifest")
		}
		if chunk.GetPath() != name {
			if err := closeCur(); err != nil {
				return nil, 0, err
			}
			if want[chunk.GetPath()] == nil {
				return nil, 0, fmt.Errorf("the node sent %q, a file its manifest does not list", chunk.GetPath())
			}
			name, next = chunk.GetPath(), 0
			target := filepath.Join(storeDir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return nil, 0, err
			}
			if cur, err = os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
				return nil, 0, fmt.Errorf("the node sent %q twice, or: %w", name, err)
			}
		}
		if chunk.GetOffset() != next {
			return nil, 0, fmt.Errorf("file %s: chunk at offset %d, expected %d", name, chunk.GetOffset(), next)
		}
		if _, err := cur.Write(chunk.GetData()); err != nil {
			return nil, 0, err
		}
		next += uint64(len(chunk.GetData()))
		total += uint64(len(chunk.GetData()))
	}
	if err := stream.Err(); err != nil {
		return nil, 0, err
	}
	if err := closeCur(); err != nil {
		return nil, 0, err
	}
	if m == nil {
		return nil, 0, errors.New("the node ended the backup stream without a manifest")
	}
	if err := verifyBackup(dir, m); err != nil {
		return nil, 0, fmt.Errorf("what arrived does not match the node's manifest: %w", err)
	}
	raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return nil, 0, err
	}
	if err := writeFileSync(filepath.Join(dir, backupManifestName), append(raw, '\n')); err != nil {
		return nil, 0, err
	}
	return m, total, nil
}

// readBackupManifest reads and checks the manifest of the backup in dir.
func readBackupManifest(dir string) (*v1.BackupManifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, backupManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s: not a backup, or an unfinished one", dir, backupManifestName)
	}
	if err != nil {
		return nil, err
	}
	m := &v1.BackupManifest{}
	if err := protojson.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errCorruptBackup, backupManifestName, err)
	}
	if m.GetFormatVersion() != replica.BackupFormatVersion {
		return nil, fmt.Errorf("backup format version %d; this causeway restores version %d", m.GetFormatVersion(), replica.BackupFormatVersion)
	}
	if m.GetRegion() == "" || m.GetClusterId() == "" || len(m.GetFiles()) == 0 {
		return nil, fmt.Errorf("%w: %s names no region, cluster or files", errCorruptBackup, backupManifestName)
	}
	for _, f := range m.GetFiles() {
		if err := checkBackupPath(f.GetPath()); err != nil {
			return nil, fmt.Errorf("%w: %w", errCorruptBackup, err)
		}
	}
	return m, nil
}

// verifyBackup checks that dir's store holds exactly the manifest's files,
// each of its size and SHA-256.
func verifyBackup(dir string, m *v1.BackupManifest) error {
	storeDir := filepath.Join(dir, backupStoreDir)
	listed := map[string]bool{}
	var problems []string
	for _, f := range m.GetFiles() {
		listed[f.GetPath()] = true
		sum, size, err := replica.FileSHA256(filepath.Join(storeDir, filepath.FromSlash(f.GetPath())))
		switch {
		case errors.Is(err, os.ErrNotExist):
			problems = append(problems, fmt.Sprintf("%s is missing", f.GetPath()))
		case err != nil:
			return err
		case size != f.GetSizeBytes():
			problems = append(problems, fmt.Sprintf("%s has %d bytes, the manifest says %d", f.GetPath(), size, f.GetSizeBytes()))
		case sum != f.GetSha256():
			problems = append(problems, fmt.Sprintf("%s has SHA-256 %s, the manifest says %s", f.GetPath(), sum, f.GetSha256()))
		}
	}
	err := filepath.WalkDir(storeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(storeDir, p)
		if err == nil && !listed[filepath.ToSlash(rel)] {
			problems = append(problems, fmt.Sprintf("%s is not in the manifest", filepath.ToSlash(rel)))
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errCorruptBackup, strings.Join(problems, "; "))
	}
	return nil
}

// checkBackupPath refuses a file name that would leave the backup's
// directory.
func checkBackupPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "\\") {
		return fmt.Errorf("the manifest names the file %q, which is not a plain relative path", p)
	}
	return nil
}

func runRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("causeway restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "data directory to create from the backup (must not exist or be empty); required")
	fs.Usage = func() { fmt.Fprint(stderr, restoreUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	switch {
	case isHelp(err):
		return exitOK
	case err != nil:
		return exitUsage
	case len(pos) != 1:
		fmt.Fprintf(stderr, "causeway restore: want the backup directory as the one argument, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	case *data == "":
		fmt.Fprintln(stderr, "causeway restore: --data DATADIR is required")
		return exitUsage
	}
	m, err := restore(pos[0], *data)
	if err != nil {
		fmt.Fprintf(stderr, "causeway restore: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "restored region %s (cluster %s) into %s at vector %s\n", m.GetRegion(), m.GetClusterId(), *data, vectorString(m.GetVector()))
	fmt.Fprintf(stdout, "start it with the region's usual flags and --join, e.g.:\n  causeway serve --region %s --data %s --cluster-id %s --join GOSSIP_ADDRESS_OF_A_LIVE_REGION\n",
		m.GetRegion(), *data, m.GetClusterId())
	fmt.Fprintln(stdout, "it serves once it has merged a snapshot of every other region (causeway status: causal_state joining, then serving)")
	if m.GetLinear().GetVoter() {
		fmt.Fprintf(stdout, "it was a voter of the linearizable tier (server %s): it rejoins the tier under a new server id, as a region that lost its data does\n", m.GetLinear().GetServerId())
	}
	return exitOK
}

// restore verifies the backup in dir, copies it into data and prepares it
// to start as the backup's region.
func restore(dir, data string) (*v1.BackupManifest, error) {
	m, err := readBackupManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := verifyBackup(dir, m); err != nil {
		return nil, fmt.Errorf("%w; nothing was written to %s", err, data)
	}
	if err := requireEmptyDir(data); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	for _, f := range m.GetFiles() {
		rel := filepath.FromSlash(f.GetPath())
		if err := copyVerified(filepath.Join(dir, backupStoreDir, rel), filepath.Join(data, rel), f.GetSha256()); err != nil {
			return nil, err
		}
	}
	info, err := replica.PrepareRestored(data)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", data, err)
	}
	if info.Region != m.GetRegion() || info.ClusterID.String() != m.GetClusterId() {
		return nil, fmt.Errorf("%w: the store holds region %q of cluster %s, the manifest says region %q of cluster %s",
			errCorruptBackup, info.Region, info.ClusterID, m.GetRegion(), m.GetClusterId())
	}
	return m, nil
}

// copyVerified copies src to dst (fsynced) and checks the SHA-256 of what
// it read, so a file changed since verifyBackup is caught too.
func copyVerified(src, dst, wantSHA string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	err = errors.Join(err, out.Sync(), out.Close())
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return fmt.Errorf("%w: %s changed while it was copied (SHA-256 %s, the manifest says %s)", errCorruptBackup, src, got, wantSHA)
	}
	return nil
}

// requireEmptyDir refuses a directory that exists and holds anything:
// backup and restore never overwrite.
func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: name a new or empty directory (nothing is overwritten)", dir)
	}
	return nil
}

func writeFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
