//go:build !unix

package config

// writable would ask access(2) whether files can be created in dir. There
// is no access(2) here, so an existing directory passes validation and
// the first write into it reports a permission problem.
func writable(string) error { return nil }
