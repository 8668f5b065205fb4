package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/replica"
)

// fakeBackup writes a backup directory whose manifest matches its files
// (they are not a store: every case below is refused before one is opened).
func fakeBackup(t *testing.T) (string, *v1.BackupManifest) {
	t.Helper()
	dir := t.TempDir()
	m := &v1.BackupManifest{FormatVersion: replica.BackupFormatVersion, ClusterId: "c", Region: "us-east", Vector: map[string]uint64{"us-east": 3}}
	for name, body := range map[string]string{"000004.sst": "table", "MANIFEST-000001": "manifest", "LOCK": ""} {
		p := filepath.Join(dir, backupStoreDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, size, err := replica.FileSHA256(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, &v1.BackupFile{Path: name, SizeBytes: size, Sha256: sum})
	}
	writeManifest(t, dir, m)
	return dir, m
}

func writeManifest(t *testing.T, dir string, m *v1.BackupManifest) {
	t.Helper()
	raw, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, backupManifestName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefusesABackupThatIsNotWhatTheNodeSent: every way a backup
// directory can differ from its manifest is refused with a message naming
// it, and the data directory is not created.
func TestRestoreRefusesABackupThatIsNotWhatTheNodeSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spoil  func(t *testing.T, dir string, m *v1.BackupManifest)
		stderr string
	}{
		{"no manifest", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.Remove(filepath.Join(dir, backupManifestName))
		}, "has no manifest.json: not a backup, or an unfinished one"},
		{"manifest not JSON", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.WriteFile(filepath.Join(dir, backupManifestName), []byte("{not json"), 0o644)
		}, "backup is corrupted: manifest.json"},
		{"unknown format version", func(t *testing.T, dir string, m *v1.BackupManifest) {
			m.FormatVersion = 2
			writeManifest(t, dir, m)
		}, "backup format version 2; this causeway restores version 1"},
		{"a flipped byte", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.WriteFile(filepath.Join(dir, backupStoreDir, "000004.sst"), []byte("tablf"), 0o644)
		}, "000004.sst has SHA-256"},
		{"a truncated file", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.WriteFile(filepath.Join(dir, backupStoreDir, "MANIFEST-000001"), []byte("mani"), 0o644)
		}, "MANIFEST-000001 has 4 bytes, the manifest says 8"},
		{"a missing file", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.Remove(filepath.Join(dir, backupStoreDir, "LOCK"))
		}, "LOCK is missing"},
		{"an extra file", func(t *testing.T, dir string, _ *v1.BackupManifest) {
			os.WriteFile(filepath.Join(dir, backupStoreDir, "000009.log"), []byte("x"), 0o644)
		}, "000009.log is not in the manifest"},
		{"a path leaving the directory", func(t *testing.T, dir string, m *v1.BackupManifest) {
			m.Files[0].Path = "../../etc/passwd"
			writeManifest(t, dir, m)
		}, `names the file "../../etc/passwd", which is not a plain relative path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := fakeBackup(t)
			tc.spoil(t, dir, m)
			data := filepath.Join(t.TempDir(), "data")
			r := runCLI("", "restore", dir, "--data", data)
			if r.code != exitFailed || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("restore: %v; want exit %d and %q", r, exitFailed, tc.stderr)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("a refused restore created %s (%v)", data, err)
			}
		})
	}
}

// TestRestoreAndBackupNeverOverwrite: a non-empty target is refused, and
// the flags are checked.
func TestRestoreAndBackupNeverOverwrite(t *testing.T) {
	dir, _ := fakeBackup(t)
	data := t.TempDir()
	keep := filepath.Join(data, "precious")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI("", "restore", dir, "--data", data); r.code != exitFailed || !strings.Contains(r.stderr, "is not empty") {
		t.Errorf("restore into a non-empty directory: %v", r)
	}
	if r := runCLI("", "backup", "--addr", "127.0.0.1:1", "--out", data); r.code != exitFailed || !strings.Contains(r.stderr, "is not empty") {
		t.Errorf("backup into a non-empty directory: %v", r)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the existing file is gone: %v", err)
	}
	for _, args := range [][]string{{"backup"}, {"restore", dir}, {"restore", "--data", data}} {
		if r := runCLI("", args...); r.code != exitUsage {
			t.Errorf("%v: %v; want a usage error", args, r)
		}
	}
}
