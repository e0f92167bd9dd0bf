package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
)

// TestCheck stores machine histories in a real etcd member and checks
// what check makes of them: one pending → installing each passes; a
// second one, or none, fails and is counted.
func TestCheck(t *testing.T) {
	const pending, installing = `{"state":"pending"}`, `{"state":"installing","events":[{"kind":"config"}]}`
	tests := []struct {
		name    string
		history map[string][]string // key under machines/ → its puts in order
		ok      bool
		want    []string
	}{
		{
			name:    "once each",
			history: map[string][]string{"a": {pending, pending, installing}, "b": {pending, installing, installing}},
			ok:      true,
			want:    []string{"2 machines, 2 installing, 2 with one config served", "once for 2 machines, more than once for 0, never for 0; 6 record writes (3.0 per machine)", "raft proposals committed"},
		},
		{
			name:    "a config served twice, folded into one event",
			history: map[string][]string{"a": {pending, installing}, "b": {pending, `{"state":"installing","events":[{"kind":"config","count":2}]}`}},
			ok:      false,
			want:    []string{"2 machines, 2 installing, 1 with one config served"},
		},
		{
			name:    "twice and never",
			history: map[string][]string{"a": {pending, installing, pending, installing}, "b": {pending}},
			ok:      false,
			want:    []string{"2 machines, 1 installing", "once for 0 machines, more than once for 1, never for 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := etcdtest.New(t, 1)
			cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Close() })
			for k, puts := range tt.history {
				for _, v := range puts {
					if _, err := cli.Put(t.Context(), "/tb/machines/"+k, v); err != nil {
						t.Fatal(err)
					}
				}
			}
			var out bytes.Buffer
			ok, err := check([]string{"-endpoints", strings.Join(c.Endpoints(), ","), "-prefix", "/tb/", "-n", "2"}, &out)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok {
				t.Errorf("got ok %t, want %t:\n%s", ok, tt.ok, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("got:\n%s\nwant it to hold %q", out.String(), w)
				}
			}
		})
	}
}
