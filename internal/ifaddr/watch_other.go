//go:build !linux

package ifaddr

// New returns a nil Table, which asks the operating system on every
// lookup: outside Linux there is no notification socket to follow, and
// tinderbox serves at scale on Linux only.
func New() (*Table, error) {
	return nil, nil
}
