package bolt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"communique/server/store"

	"github.com/google/go-cmp/cmp"
)

// TestDiskFull fills a real 1 MiB tmpfs: the commit fails with
// ErrUnavailable wrapping ENOSPC, nothing of it is visible, and the store
// works again once space is freed. It needs to mount (root with
// CAP_SYS_ADMIN); elsewhere it skips, and TestFailingCommit covers the
// same path with an injected error.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): run as root with CAP_SYS_ADMIN to test a real disk-full", err)
	}
	// Registered after TempDir's own cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "data")
	ctx := context.Background()
	s := openT(t, dir, Options{})
	setup(t, s, "a")
	appendT(t, s, store.Append{Key: key("a"), Records: records("a", 1, 1)})

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)

	big := records("a", 2, 2)
	big[0].Op[0].Insert = strings.Repeat("x", 256<<10) // needs pages the disk no longer has
	err := s.Append(ctx, store.Append{Key: key("a"), Records: big})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Append on a full disk = %v; want ErrUnavailable", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Append on a full disk = %v; want it to wrap ENOSPC", err)
	}
	t.Logf("full disk: %v", err)
	if diff := cmp.Diff(records("a", 1, 1), loadT(t, s, key("a")).Ops, diffOpts); diff != "" {
		t.Errorf("after the failed commit (-want +got):\n%s", diff)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatalf("free space: %v", err)
	}
	appendT(t, s, store.Append{Key: key("a"), Records: big})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := openT(t, dir, Options{})
	got := loadT(t, s2, key("a"))
	if len(got.Ops) != 2 || got.Ops[1].Op[0].Insert != big[0].Op[0].Insert {
		t.Errorf("after recovery and reopen: %d ops; want 2 with the big insert last", len(got.Ops))
	}
}

// fillDisk writes to path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v; want ENOSPC eventually", err)
			}
			return
		}
	}
}
