package main

import (
	"context"
	"net/http"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/tftp"
)

// addTFTP serves ipxe.dir: over HTTP at /boot/{file} for UEFI HTTP boot
// clients, and, when tftp.enabled, over TFTP on tftp.listen. It says which
// boot binaries ipxe.dir lacks and how to get them, and serves what exists.
func (d *daemon) addTFTP(ctx context.Context) error {
	root := ipxe.NewRoot(d.cfg.IPXE.Dir)
	d.closers = append(d.closers, root.Close)
	if missing := ipxe.Missing(root.Dir(), ipxe.Required...); len(missing) > 0 {
		d.log.Warn("ipxe.dir lacks boot binaries; serving what exists",
			"dir", root.Dir(), "missing", missing, "hint", ipxe.InstallHint)
	}
	if missing := ipxe.Missing(root.Dir(), ipxe.EFIArm64); len(missing) > 0 {
		d.log.Info("no arm64 iPXE in ipxe.dir; arm64 UEFI machines cannot netboot", "dir", root.Dir(), "file", ipxe.EFIArm64)
	}
	boot := ipxe.Handler(root, d.log)
	d.boot.Router().Method(http.MethodGet, ipxe.HTTPPath, boot)
	d.boot.Router().Method(http.MethodHead, ipxe.HTTPPath, boot)

	if !d.cfg.TFTP.Enabled {
		return nil
	}
	pc, err := bind.UDP(ctx, "TFTP", d.cfg.TFTP.Listen)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, pc.Close)
	d.tftpAddr = pc.LocalAddr()
	srv := tftp.New(tftp.Options{
		Files:    root,
		Logger:   d.log,
		Metrics:  tftp.NewMetrics(d.registry),
		Recorder: d.flow,
	})
	d.log.Info("tftp listening", "addr", pc.LocalAddr().String(), "dir", root.Dir())
	d.servers = append(d.servers, server{"TFTP", func(ctx context.Context) error { return srv.Serve(ctx, pc) }})
	return nil
}
