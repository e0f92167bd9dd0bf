// Command etcdcluster is the etcd of scripts/bench-storm.sh's replica
// rounds: it runs one member of an etcd cluster (the script starts three,
// one process each, as production runs them), and afterwards checks what
// a storm left in the cluster and prints etcd's own figures.
//
//	etcdcluster member -name m0 -dir D -peer URL -client URL -cluster m0=URL,m1=URL,m2=URL
//	etcdcluster check -endpoints URL,URL,URL -prefix /tinderbox/ -n 5000
//
// A member is a go.etcd.io/etcd/server/v3/embed server, the same etcd
// release as the client tinderbox uses (so no version skew to account
// for), with its write-ahead log and database fsynced as a production
// member's are. It serves /health and /metrics on its client URL and
// stops on SIGTERM or SIGINT.
//
// check reads every machine record under -prefix, then replays their
// whole history with a watch from revision 1 (the members never compact
// here), and fails unless there are n records, every one installing,
// and every machine went from pending to installing exactly once. It
// then prints the members' write figures from their /metrics.
//
// It is a benchmark tool, not part of tinderbox: it lives under internal/
// so the scripts build it from the module with `go build`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: etcdcluster member|check [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "member":
		err = member(os.Args[2:])
	case "check":
		var ok bool
		ok, err = check(os.Args[2:], os.Stdout)
		if err == nil && !ok {
			os.Exit(1)
		}
	default:
		err = fmt.Errorf("unknown command %q: member or check", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "etcdcluster:", err)
	os.Exit(2)
}

// member runs one etcd member until SIGTERM or SIGINT.
func member(args []string) error {
	fs := flag.NewFlagSet("member", flag.ExitOnError)
	name := fs.String("name", "m0", "the member's name, as in -cluster")
	dir := fs.String("dir", "", "its data directory (write-ahead log and database)")
	peer := fs.String("peer", "", "its peer URL (http://IP:PORT)")
	client := fs.String("client", "", "its client URL (http://IP:PORT)")
	cluster := fs.String("cluster", "", "every member's NAME=PEER_URL, comma-separated")
	_ = fs.Parse(args)
	if *dir == "" || *peer == "" || *client == "" || *cluster == "" {
		return fmt.Errorf("member: -dir, -peer, -client and -cluster are required")
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		return fmt.Errorf("member: -peer: %w", err)
	}
	cu, err := url.Parse(*client)
	if err != nil {
		return fmt.Errorf("member: -client: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster, cfg.InitialClusterToken = *cluster, "bench-storm"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", *name, err)
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", *name, err)
	}
}

// record is the part of a stored machine record check reads.
type record struct {
	State  string `json:"state"`
	Events []struct {
		Kind string `json:"kind"`
		// Count is how many times in a row it happened; 0 means once.
		Count int `json:"count"`
	} `json:"events"`
}

// history is what check found of one machine.
type history struct {
	writes      int // puts of its record
	toInstall   int // pending → installing between consecutive puts
	configEvent int // "config" events in its current record
}

// check verifies a storm's outcome in etcd and prints etcd's figures; ok
// is false when the outcome is not the one wanted.
func check(args []string, w io.Writer) (bool, error) {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	endpoints := fs.String("endpoints", "", "the members' client URLs, comma-separated")
	prefix := fs.String("prefix", "/tinderbox/", "tinderbox's state.etcd.prefix")
	n := fs.Int("n", 5000, "machines the storm booted")
	_ = fs.Parse(args)
	eps := strings.Split(*endpoints, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second, Context: ctx,
		MaxCallRecvMsgSize: 1 << 30})
	if err != nil {
		return false, fmt.Errorf("check: %w", err)
	}
	defer cli.Close()

	machines := *prefix + "machines/"
	now, err := cli.Get(ctx, machines, clientv3.WithPrefix())
	if err != nil {
		return false, fmt.Errorf("check: read %s: %w", machines, err)
	}
	hs := map[string]*history{}
	installing := 0
	for _, kv := range now.Kvs {
		var r record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return false, fmt.Errorf("check: %s: %w", kv.Key, err)
		}
		h := &history{}
		for _, e := range r.Events {
			if e.Kind == "config" {
				h.configEvent += max(e.Count, 1)
			}
		}
		if r.State == "installing" {
			installing++
		}
		hs[string(kv.Key)] = h
	}
	if err := replay(ctx, cli, machines, now.Header.Revision, hs); err != nil {
		return false, err
	}
	var once, twice, never, writes, oneConfig int
	for _, h := range hs {
		writes += h.writes
		switch h.toInstall {
		case 0:
			never++
		case 1:
			once++
		default:
			twice++
		}
		if h.configEvent == 1 {
			oneConfig++
		}
	}
	fmt.Fprintf(w, "etcd records: %d machines, %d installing, %d with one config served (want %d of %d each)\n",
		len(hs), installing, oneConfig, *n, *n)
	fmt.Fprintf(w, "etcd history: pending → installing once for %d machines, more than once for %d, never for %d; %d record writes (%.1f per machine)\n",
		once, twice, never, writes, float64(writes)/float64(max(1, len(hs))))
	ok := len(hs) == *n && installing == *n && once == *n && oneConfig == *n
	if err := figures(ctx, eps, w); err != nil {
		return ok, err
	}
	return ok, nil
}

// replay watches machines from revision 1 up to rev and counts, per
// record, its puts and its pending → installing steps.
func replay(ctx context.Context, cli *clientv3.Client, machines string, rev int64, hs map[string]*history) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, machines, clientv3.WithPrefix(), clientv3.WithRev(1))
	prev := map[string]string{}
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("check: replay: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > rev {
				return nil
			}
			k := string(ev.Kv.Key)
			h := hs[k]
			if h == nil {
				h = &history{}
				hs[k] = h
			}
			if ev.Type != clientv3.EventTypePut {
				prev[k] = ""
				continue
			}
			var r record
			if err := json.Unmarshal(ev.Kv.Value, &r); err != nil {
				return fmt.Errorf("check: %s at %d: %w", k, ev.Kv.ModRevision, err)
			}
			h.writes++
			if prev[k] == "pending" && r.State == "installing" {
				h.toInstall++
			}
			prev[k] = r.State
			if ev.Kv.ModRevision == rev {
				return nil
			}
		}
	}
	return fmt.Errorf("check: replay: the watch ended before revision %d", rev)
}

// figures prints what the members' /metrics say of the writes: the raft
// proposals committed (each an entry every member writes to its log) and
// the keys put (every member applies every one; the first member's counts
// are shown), the database's size, and the mean write-ahead log fsync and
// backend commit over all members.
func figures(ctx context.Context, eps []string, w io.Writer) error {
	var (
		proposals, put, size float64
		fsyncSum, fsyncN     float64
		commitSum, commitN   float64
	)
	for i, ep := range eps {
		mf, err := scrape(ctx, ep)
		if err != nil {
			return err
		}
		if i == 0 {
			proposals, put = value(mf, "etcd_server_proposals_committed_total"), value(mf, "etcd_mvcc_put_total")
			size = value(mf, "etcd_mvcc_db_total_size_in_bytes")
		}
		s, c := histogram(mf, "etcd_disk_wal_fsync_duration_seconds")
		fsyncSum, fsyncN = fsyncSum+s, fsyncN+c
		s, c = histogram(mf, "etcd_disk_backend_commit_duration_seconds")
		commitSum, commitN = commitSum+s, commitN+c
	}
	fmt.Fprintf(w, "etcd figures: %.0f raft proposals committed, %.0f puts, db size %.1f MiB; WAL fsync mean %.2f ms (%.0f over %d members), backend commit mean %.2f ms (%.0f)\n",
		proposals, put, size/(1<<20), 1000*fsyncSum/max(1, fsyncN), fsyncN, len(eps), 1000*commitSum/max(1, commitN), commitN)
	return nil
}

func scrape(ctx context.Context, ep string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(ep, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("check: metrics of %s: %w", ep, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("check: metrics of %s: %w", ep, err)
	}
	return mf, nil
}

// value sums a counter's or gauge's series.
func value(mf map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	if f := mf[name]; f != nil {
		for _, m := range f.Metric {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

// histogram sums a histogram's series' sums and counts.
func histogram(mf map[string]*dto.MetricFamily, name string) (sum, count float64) {
	if f := mf[name]; f != nil {
		for _, m := range f.Metric {
			sum += m.GetHistogram().GetSampleSum()
			count += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, count
}
