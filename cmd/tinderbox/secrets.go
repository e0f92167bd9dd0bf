package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Work with the cluster's secrets bundle (talosctl gen secrets format)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newSecretsGenCmd())
	return cmd
}

func newSecretsGenCmd() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write a new secrets bundle: the cluster's CAs, tokens and encryption secret",
		Long: `gen writes a new secrets bundle in the format of talosctl gen secrets, with
the key kinds Talos uses: ECDSA P-256 etcd, Kubernetes and aggregator CAs,
an Ed25519 Talos API CA, an RSA 4096 service-account key, bootstrap and
trustd tokens and a secretbox encryption secret. Put it in the profiles
directory as secrets.yaml (or secrets/<name>.yaml) and tinderbox fills it
into every rendered machine config; talosctl gen config --with-secrets reads
the same file (for talosconfig).

The file is created with mode 0600; an existing file is kept unless --force
is given. "-o -" writes to standard output.`,
		Example: "  tinderbox secrets gen -o profiles/secrets.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := secrets.Generate(rand.Reader, time.Now())
			if err != nil {
				return err
			}
			data, err := b.Marshal()
			if err != nil {
				return err
			}
			if out == "-" {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			if err := writeSecret(out, data, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (mode 0600): keep it out of public git\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "secrets.yaml", `file to write ("-" for standard output)`)
	cmd.Flags().BoolVar(&force, "force", false, "replace the file if it exists")
	return cmd
}

// writeSecret writes data to path with mode 0600. Without force an
// existing path is an error; with it the file is replaced atomically (a
// temporary file beside it, renamed over it), so a reader never sees half
// a bundle and the old file's mode does not carry over.
func writeSecret(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("secrets gen: %s exists: it may hold a cluster's only keys; pass --force to replace it", path)
		}
		if err != nil {
			return fmt.Errorf("secrets gen: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("secrets gen: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("secrets gen: write %s: %w", path, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("secrets gen: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod says so whatever the
	// platform's default.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("secrets gen: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("secrets gen: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("secrets gen: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("secrets gen: %w", err)
	}
	return nil
}
