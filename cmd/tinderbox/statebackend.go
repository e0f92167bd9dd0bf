package main

import (
	"fmt"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/state"
)

// openState opens the state backend cfg.Backend names: the bbolt
// database under cfg.Dir, or the etcd cluster of cfg.Etcd shared with
// the other replicas.
func openState(cfg config.State, opts state.Options) (state.Backend, error) {
	if cfg.Backend != "etcd" {
		s, err := state.Open(cfg.Dir, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	e := cfg.Etcd
	eo := state.EtcdOptions{
		Endpoints: e.Endpoints, Prefix: e.Prefix, DialTimeout: e.DialTimeout, RequestTimeout: e.RequestTimeout,
		Username: e.Username, Password: e.Password,
	}
	if e.TLS.CA != "" || e.TLS.Cert != "" {
		// etcd's own loader, as etcdctl's --cacert/--cert/--key load them.
		info := transport.TLSInfo{TrustedCAFile: e.TLS.CA, CertFile: e.TLS.Cert, KeyFile: e.TLS.Key}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("state.etcd.tls: %w", err)
		}
		eo.TLS = tc
	}
	s, err := state.OpenEtcd(opts, eo)
	if err != nil {
		return nil, err
	}
	return s, nil
}
