package bench

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkFdatasync measures what one WAL fsync costs this machine: one
// goroutine appending 4 KiB to a file in the benchmark's temporary directory
// (on the filesystem the other benchmarks' stores use) and calling
// fdatasync(2), as Pebble's WAL does on Linux. The file is written once to
// its full size first, as a recycled WAL is, so the syncs carry data and no
// size change. Reported: ns/op, the wall time of one append and fdatasync,
// and cpu-us/op, the process CPU it took. Where cpu-us/op is a large part
// of ns/op, as on virtual disks, every fsync takes CPU from the RPCs it
// makes durable, and fewer, larger group commits pay off.
func BenchmarkFdatasync(b *testing.B) {
	const block = 4 << 10
	f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, block)
	size := int64(b.N) * block
	for off := int64(0); off < size; off += 1 << 20 {
		if _, err := f.WriteAt(make([]byte, min(1<<20, size-off)), off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	fd := int(f.Fd())
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		if _, err := f.WriteAt(buf, int64(i)*block); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(fd); err != nil {
			b.Fatal(err)
		}
	}
	cpu := processCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(micros(cpu)/float64(b.N), "cpu-us/op")
}
