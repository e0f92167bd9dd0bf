package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
)

// addDHCP binds the proxyDHCP listeners (dhcp.port and, unless 0,
// dhcp.pxePort) and adds one server per listener. It adds nothing when
// dhcp.enabled is false.
//
// The boot flow decides who is answered (an unknown machine under
// `unknown: ignore` is not) and records every reply in the machine's state.
func (d *daemon) addDHCP(ctx context.Context) error {
	c := d.cfg.DHCP
	if !c.Enabled {
		return nil
	}
	advertise, err := netip.ParseAddr(d.cfg.Advertise)
	if err != nil || !advertise.Is4() {
		return fmt.Errorf("proxyDHCP: advertise %q is not an IPv4 address; set advertise or dhcp.interface", d.cfg.Advertise)
	}
	httpPort := d.httpAddr.(*net.TCPAddr).Port
	cfg := proxydhcp.Config{
		Advertise: advertise,
		HTTPPort:  httpPort,
		Arm64:     len(ipxe.Missing(d.cfg.IPXE.Dir, ipxe.EFIArm64)) == 0,
	}
	m := proxydhcp.NewMetrics(d.registry)

	type listener struct {
		what string
		port int
		pxe  bool
	}
	listeners := []listener{{"proxyDHCP", c.Port, false}}
	if c.PXEPort != 0 {
		listeners = append(listeners, listener{"proxyDHCP PXE", c.PXEPort, true})
	}
	for _, l := range listeners {
		conn, err := proxydhcp.Listen(ctx, l.what, c.Interface, l.port)
		if err != nil {
			return err
		}
		d.closers = append(d.closers, conn.Close)
		if others, err := proxydhcp.Sharers(conn); err != nil {
			d.log.Warn("proxyDHCP: cannot tell whether another process shares the port", "port", l.port, "err", err)
		} else if len(others) > 0 {
			d.log.Warn("proxyDHCP: another socket on this host listens on the same UDP port and interface; "+
				"the kernel gives each unicast packet (port-4011 REQUESTs, relayed requests) to one socket only, "+
				"so some PXE clients may go unanswered: stop the other server or bind each to its own interface (dhcp.interface)",
				"port", l.port, "sharers", strings.Join(others, "; "))
		}
		srv := proxydhcp.New(proxydhcp.Options{
			Config:   cfg,
			Logger:   d.log,
			Metrics:  m,
			PXEPort:  l.pxe,
			Policy:   d.flow,
			Recorder: d.flow,
			Observer: d.flow,
		})
		d.servers = append(d.servers, server{l.what, func(ctx context.Context) error { return srv.Serve(ctx, conn) }})
	}
	d.log.Info("proxyDHCP listening", "interface", c.Interface, "port", c.Port, "pxe_port", c.PXEPort,
		"boot_script", cfg.ScriptURL(), "arm64", cfg.Arm64)
	return nil
}
