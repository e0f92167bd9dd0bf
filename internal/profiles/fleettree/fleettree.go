// Package fleettree writes a profiles directory of many machines, built on
// the example profiles/ of the repository, for the benchmarks and bench
// scripts that measure loading, validating and reloading a large tree
// (scripts/bench-scale.sh, BenchmarkValidate, BenchmarkLoad5000).
package fleettree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LonghornEvery is how often a worker lists the longhorn group: every
// LonghornEvery-th machine does, so that group is used by about a fifth of
// the fleet (what a group edit touches in the bench).
const LonghornEvery = 5

// Write copies the example profiles directory src to dst (created) and
// replaces its machines by n of its own: three control-plane NUCs, then
// workers (VMs), every LonghornEvery-th of them in the longhorn group.
// Each machine has its own MAC (MAC(i)), hostname and static address, so
// the tree validates without a problem. src's dot files are skipped.
func Write(src, dst string, n int) error {
	if err := copyTree(src, dst); err != nil {
		return fmt.Errorf("fleettree: copy %s: %w", src, err)
	}
	machines := filepath.Join(dst, "machines")
	old, err := filepath.Glob(filepath.Join(machines, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(machines, 0o755); err != nil {
		return err
	}
	for i := range n {
		if err := os.WriteFile(MachineFile(dst, i), Machine(i, ""), 0o644); err != nil {
			return fmt.Errorf("fleettree: %w", err)
		}
	}
	return nil
}

// MAC is the i-th machine's MAC address, dashed as its file is named
// (1c-69-7a-00-00-05 for i = 5).
func MAC(i int) string {
	return fmt.Sprintf("1c-69-7a-%02x-%02x-%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

// MachineFile is the path of the i-th machine's file in the tree at dir.
func MachineFile(dir string, i int) string {
	return filepath.Join(dir, "machines", MAC(i)+".yaml")
}

// Machine is the i-th machine's file. A non-empty note is appended as a
// value (values.note), which changes that machine's rendered config only
// if a template uses it, and its render input always: what an edit of one
// machine's file looks like.
func Machine(i int, note string) []byte {
	host, groups := fmt.Sprintf("worker-%04d", i), "worker, vm"
	// The example's LAN is 192.168.1.0/24 (gateway .1, VIP .50); the
	// fleet's addresses go on from 192.168.2.0, 250 a /24.
	addr := fmt.Sprintf("192.168.%d.%d/16", 2+i/250, 1+i%250)
	if i < 3 {
		host, groups = fmt.Sprintf("cp-%02d", i+1), "controlplane, nuc"
		addr = fmt.Sprintf("192.168.1.%d/24", 11+i)
	} else if i%LonghornEvery == 0 {
		groups += ", longhorn"
	}
	body := fmt.Sprintf("hostname: %s\ngroups: [%s]\nvalues:\n  address: %s\n", host, groups, addr)
	if note != "" {
		body += fmt.Sprintf("  note: %q\n", note)
	}
	return []byte(body)
}

// copyTree copies the regular files under src to dst, skipping dot files.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, to)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
