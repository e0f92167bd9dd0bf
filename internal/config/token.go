package config

import (
	"fmt"
	"math"
	"os"
	"strings"
)

// MinTokenBits is the least entropy ReadToken accepts in an admin token,
// in bits: 32 random bytes, what `openssl rand -hex 32` writes.
const MinTokenBits = 256

// minTokenDistinct is the fewest different characters a token may hold.
// 64 random hex digits hold about 16 (fewer than 10 with odds below
// 1e-9); a token of a few characters repeated is typed, not generated.
const minTokenDistinct = 10

// tokenHint tells how to make a token ReadToken accepts.
const tokenHint = "make one with: openssl rand -hex 32 > FILE"

// ReadToken reads a bearer token file: its first line, trimmed. It fails
// when the file cannot be read, holds no token, or the token is weak
// (CheckToken).
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(string(data), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%s holds no token (%s)", path, tokenHint)
	}
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// CheckToken refuses a token whose estimated entropy (TokenBits) is under
// MinTokenBits, or that is trivially repetitive: fewer than 10 distinct
// characters, or one shorter string repeated. The error says how to make
// a good one and never holds the token.
func CheckToken(tok string) error {
	if bits := TokenBits(tok); bits < MinTokenBits {
		return fmt.Errorf("the token is too weak: about %d bits of entropy, want at least %d (%s)", int(bits), MinTokenBits, tokenHint)
	}
	distinct := map[rune]bool{}
	for _, r := range tok {
		distinct[r] = true
	}
	if len(distinct) < minTokenDistinct {
		return fmt.Errorf("the token is too repetitive: %d distinct characters, want at least %d (%s)", len(distinct), minTokenDistinct, tokenHint)
	}
	if p := period(tok); p < len(tok) {
		return fmt.Errorf("the token repeats a %d-character string (%s)", p, tokenHint)
	}
	return nil
}

// TokenBits estimates a token's entropy in bits as its length times log2
// of the smallest usual alphabet holding every character it uses: hex 16,
// base32 32, letters and digits 62, base64 (standard or URL-safe) 64,
// anything else 95 (printable ASCII). Trailing "=" padding counts for
// nothing. The estimate is an upper bound: it holds only for a token
// drawn at random.
func TokenBits(tok string) float64 {
	body := strings.TrimRight(tok, "=")
	alphabet := 95
	for _, a := range tokenAlphabets {
		if strings.Trim(body, a.chars) == "" {
			alphabet = a.size
			break
		}
	}
	return float64(len(body)) * math.Log2(float64(alphabet))
}

// tokenAlphabets are the alphabets TokenBits knows, smallest first.
var tokenAlphabets = []struct {
	chars string
	size  int
}{
	{"0123456789abcdef", 16},
	{"0123456789ABCDEF", 16},
	{"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 32},
	{"abcdefghijklmnopqrstuvwxyz234567", 32},
	{alnum, 62},
	{alnum + "+/", 64},
	{alnum + "-_", 64},
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// period is the length of the shortest string s repeats (len(s) when it
// repeats none): "abcabcabc" has period 3.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if len(s)%p == 0 && strings.Repeat(s[:p], len(s)/p) == s {
			return p
		}
	}
	return len(s)
}
