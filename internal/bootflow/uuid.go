package bootflow

import "strings"

// canonicalUUID returns s as a canonical SMBIOS UUID (8-4-4-4-12 lower-case
// hex), or "" when it is not one.
func canonicalUUID(s string) string {
	if len(s) != 36 {
		return ""
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return ""
		}
	}
	return strings.ToLower(s)
}
