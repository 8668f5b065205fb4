package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/internal/buildinfo"
)

// BackupFormatVersion is the version of a backup's manifest and layout. A
// restore refuses any other.
const BackupFormatVersion = 1

// backupDirName is where, inside the data directory, a backup's checkpoint
// lives while it is streamed. A node removes it after each backup, and
// before the next (a crash may leave one).
const backupDirName = ".backup-checkpoint"

// backupChunkBytes is the size of the file chunks of a backup stream: large
// enough that framing costs nothing, far below any message limit.
const backupChunkBytes = 1 << 20

// Backup takes a consistent checkpoint of the region's store while the node
// serves, and hands send the manifest, then every file's contents in
// chunks. The checkpoint is removed when it returns. One backup runs at a
// time: another is refused with api.ErrResourceExhausted.
func (n *Node) Backup(ctx context.Context, send func(*v1.BackupResponse) error) error {
	if n.cfg.FS != nil {
		return api.Errorf(api.ErrFailedPrecondition, "region %s keeps its store in memory: there is nothing on disk to back up", n.cfg.Region)
	}
	if !n.backupBusy.CompareAndSwap(false, true) {
		return api.Errorf(api.ErrResourceExhausted, "a backup of region %s is already running on this node; wait for it to finish", n.cfg.Region)
	}
	defer n.backupBusy.Store(false)
	dir := filepath.Join(n.cfg.DataDir, backupDirName)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove an earlier backup's checkpoint: %w", err)
	}
	defer os.RemoveAll(dir)
	started := n.cfg.Now()
	if err := n.store.Checkpoint(dir); err != nil {
		return err
	}
	info, err := ReadCheckpoint(dir)
	if err != nil {
		return fmt.Errorf("read the checkpoint: %w", err)
	}
	m := &v1.BackupManifest{
		FormatVersion: BackupFormatVersion,
		ClusterId:     info.ClusterID.String(),
		Region:        info.Region,
		NodeId:        info.NodeID,
		Vector:        info.Vector,
		TakenAt:       timestamppb.New(started),
		BuildVersion:  buildinfo.Read().Short(),
		Linear:        &v1.BackupLinear{ServerId: info.RaftServerID},
		Merging:       info.Merging || info.Joining,
	}
	if n.linear != nil {
		ls := n.linear.Status()
		m.Linear = &v1.BackupLinear{
			Enabled: ls.GetEnabled(), Voter: ls.GetVoter(), ServerId: ls.GetServerId(),
			LeaderId: ls.GetLeaderId(), Term: ls.GetTerm(), AppliedIndex: ls.GetAppliedIndex(),
		}
	}
	if m.Files, err = checksumTree(dir); err != nil {
		return err
	}
	if err := send(&v1.BackupResponse{Part: &v1.BackupResponse_Manifest{Manifest: m}}); err != nil {
		return err
	}
	buf := make([]byte, backupChunkBytes)
	for _, f := range m.Files {
		if err := sendFile(ctx, filepath.Join(dir, filepath.FromSlash(f.Path)), f.Path, buf, send); err != nil {
			return err
		}
	}
	n.log.Info("backup streamed", "vector", info.Vector.String(), "files", len(m.Files),
		"took", n.cfg.Now().Sub(started).Round(time.Millisecond))
	return nil
}

// checksumTree lists every regular file under dir, sorted by path, with its
// size and SHA-256.
func checksumTree(dir string) ([]*v1.BackupFile, error) {
	var files []*v1.BackupFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("checkpoint holds %s, which is not a regular file", path)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		sum, size, err := FileSHA256(path)
		if err != nil {
			return err
		}
		files = append(files, &v1.BackupFile{Path: filepath.ToSlash(rel), SizeBytes: size, Sha256: sum})
		return nil
	})
	slices.SortFunc(files, func(a, b *v1.BackupFile) int {
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
	return files, err
}

// FileSHA256 returns the lowercase hex SHA-256 of the file at path and its
// size in bytes.
func FileSHA256(path string) (string, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), uint64(size), nil
}

func sendFile(ctx context.Context, path, name string, buf []byte, send func(*v1.BackupResponse) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var offset uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := io.ReadFull(f, buf)
		if k > 0 || offset == 0 { // an empty file is one empty chunk
			chunk := &v1.BackupFileChunk{Path: name, Offset: offset, Data: buf[:k]}
			if err := send(&v1.BackupResponse{Part: &v1.BackupResponse_File{File: chunk}}); err != nil {
				return err
			}
			offset += uint64(k)
		}
		switch {
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return nil
		case rerr != nil:
			return fmt.Errorf("read %s: %w", path, rerr)
		}
	}
}

// Backup streams a backup of the node's region (Node.Backup).
func (h adminHandler) Backup(ctx context.Context, _ *connect.Request[v1.BackupRequest], stream *connect.ServerStream[v1.BackupResponse]) error {
	if err := h.node.Backup(ctx, stream.Send); err != nil {
		return api.ConnectError(err)
	}
	return nil
}
