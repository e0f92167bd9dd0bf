package config

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckToken: what `openssl rand` and friends write passes; short,
// guessable and repetitive tokens do not, and the error says how to make
// a good one without repeating the token.
func TestCheckToken(t *testing.T) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tok string
		want      string // "" for accepted, else a substring of the error
	}{
		{"hex 32 bytes", hex.EncodeToString(b), ""},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString(b)), ""},
		{"base64 32 bytes", base64.StdEncoding.EncodeToString(b), ""},
		{"base64url 32 bytes, unpadded", base64.RawURLEncoding.EncodeToString(b), ""},
		{"base32 32 bytes", base32.StdEncoding.EncodeToString(b), ""},
		{"hex 31 bytes", hex.EncodeToString(b[:31]), "too weak: about 248 bits"},
		{"one character", "Q", "too weak"},
		{"a word", "s3cret", "too weak"},
		{"long but one character", strings.Repeat("a", 200), "too repetitive: 1 distinct"},
		{"long, few characters", strings.Repeat("deadbeef", 10), "too repetitive"},
		{"a short string repeated", strings.Repeat("0123456789abcdef", 5), "repeats a 16-character string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckToken(tt.tok)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", err, tt.want)
			case err != nil && (!strings.Contains(err.Error(), "openssl rand -hex 32") || strings.Contains(err.Error(), tt.tok)):
				t.Errorf("error %q: want the openssl hint and not the token", err)
			}
		})
	}
}

func TestTokenBits(t *testing.T) {
	tests := []struct {
		tok  string
		want float64
	}{
		{"0123456789abcdef", 16 * 4},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 32 * 5},
		{"abcDEF", 6 * 5.954196310386876},
		{"ab+/", 4 * 6},
		{"ab-_==", 4 * 6},
		{"a b!", 4 * 6.569855608330948},
		{"", 0},
	}
	for _, tt := range tests {
		if got := TokenBits(tt.tok); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("TokenBits(%q): got %v, want %v", tt.tok, got, tt.want)
		}
	}
}

// TestReadToken: the first line, trimmed; a weak token names the file.
func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("0123456789abcdef", 3) + "fedcba9876543210"
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ReadToken(write("good", "  "+good+" \nsecond line\n")); err != nil || got != good {
		t.Errorf("good: got %q, %v", got, err)
	}
	weak := write("weak", "hunter2\n")
	if _, err := ReadToken(weak); err == nil || !strings.Contains(err.Error(), weak+": the token is too weak") {
		t.Errorf("weak: got %v", err)
	}
	if _, err := ReadToken(write("empty", "\n")); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Errorf("empty: got %v", err)
	}
}
