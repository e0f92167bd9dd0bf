//go:build linux

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	got := parseCmdline("console=ttyS0 talos.config=http://10.78.0.2:8080/config/52-54-00-78-00-01?token=a=b quiet e2e.stall=0 e2e.stall=1\n")
	want := map[string]string{
		"console":      "ttyS0",
		"talos.config": "http://10.78.0.2:8080/config/52-54-00-78-00-01?token=a=b",
		"quiet":        "",
		"e2e.stall":    "1",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

func TestParseKmsg(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want kmsgRecord
		ok   bool
	}{
		{"kernel", "6,339,5140900,-;Linux version 6.1.0\n", kmsgRecord{facility: 0, level: 6, seq: 339, usec: 5140900, msg: "Linux version 6.1.0"}, true},
		{"user line with continuation", "14,1000,7000000,-,caller=T1;[talos] installing\n SUBSYSTEM=x\n", kmsgRecord{facility: 1, level: 6, seq: 1000, usec: 7000000, msg: "[talos] installing"}, true},
		{"error level", "3,2,10,c;oops\n", kmsgRecord{facility: 0, level: 3, seq: 2, usec: 10, msg: "oops"}, true},
		{"no semicolon", "6,1,2,-\n", kmsgRecord{}, false},
		{"short header", "6,1;x\n", kmsgRecord{}, false},
		{"not a number", "a,1,2,-;x\n", kmsgRecord{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseKmsg([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestRecordJSON checks the line against the shape of Talos' JSON-lines
// sender: keys sorted, syslog names, zap's level names, time from boot.
func TestRecordJSON(t *testing.T) {
	boot := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		rec  kmsgRecord
		want string
	}{
		{kmsgRecord{facility: 1, level: 6, seq: 7, usec: 1500000, msg: "[talos] done"},
			`{"clock":1500000,"facility":"user","msg":"[talos] done","priority":"info","seq":7,"talos-level":"info","talos-time":"2026-05-01T10:00:01.5Z"}`},
		{kmsgRecord{facility: 0, level: 4, seq: 1, usec: 1, msg: "w"},
			`{"clock":1,"facility":"kern","msg":"w","priority":"warning","seq":1,"talos-level":"warn","talos-time":"2026-05-01T10:00:00.000001Z"}`},
		{kmsgRecord{facility: 0, level: 2, seq: 2, usec: 0, msg: "c"},
			`{"clock":0,"facility":"kern","msg":"c","priority":"crit","seq":2,"talos-level":"error","talos-time":"2026-05-01T10:00:00Z"}`},
		{kmsgRecord{facility: 20, level: 7, seq: 3, usec: 0, msg: "d"},
			`{"clock":0,"facility":"20","msg":"d","priority":"debug","seq":3,"talos-level":"debug","talos-time":"2026-05-01T10:00:00Z"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.rec.json(boot))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("got %s\nwant %s", b, tt.want)
		}
	}
}

func TestInstallDisk(t *testing.T) {
	got := installDisk([]byte("version: v1alpha1\nmachine:\n  install:\n    disk: /dev/sdb\n"))
	if got != "/dev/sdb" {
		t.Errorf("got %q, want /dev/sdb", got)
	}
	if got := installDisk([]byte("machine: {}\n")); !strings.HasPrefix(got, "/dev/") {
		t.Errorf("without machine.install.disk: got %q, want a /dev path", got)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := newID()
		if len(id) != 20 || strings.ToLower(id) != id {
			t.Fatalf("got %q, want 20 lower-case characters", id)
		}
		if seen[id] {
			t.Fatalf("got %q twice", id)
		}
		seen[id] = true
		if id[:6] < prev {
			t.Fatalf("got %q after %q: want ids that sort by time", id, prev)
		}
		prev = id[:6]
	}
}
