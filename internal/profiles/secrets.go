package profiles

import (
	"crypto/sha256"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

// bundle is a secrets bundle and its file; bundle is nil when the file
// has problems.
type bundle struct {
	file   string
	bundle *secrets.Bundle
	sum    [sha256.Size]byte // of the file's content
}

// readBundles reads the secrets bundles (docs/profiles.md, "Secrets
// bundle"): secrets.yaml at the top of dir, the default (named "" in
// ls.bundles), when it exists, and every secrets/<name>.yaml. A bundle
// that does not parse has a nil bundle, and its problems (file, line,
// field; never a value) are returned.
func (ls *layers) readBundles(dir string) []error {
	ls.bundles = map[string]bundle{}
	paths := map[string]string{}
	if fi, err := os.Stat(filepath.Join(dir, "secrets.yaml")); err == nil && !emptyDir(filepath.Join(dir, "secrets.yaml"), fi) {
		paths[""] = filepath.Join(dir, "secrets.yaml")
	}
	maps.Copy(paths, ls.files["secrets"])
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(paths)) {
		path := paths[name]
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &Problem{File: path, Msg: err.Error()})
			ls.bundles[name] = bundle{file: path}
			continue
		}
		b, err := secrets.Parse(data)
		for _, e := range problem.Leaves(err) {
			var se *secrets.Error
			if errors.As(e, &se) {
				errs = append(errs, &Problem{File: path, Line: se.Line, Msg: "secrets bundle: " + (&secrets.Error{Field: se.Field, Msg: se.Msg}).Error()})
				continue
			}
			errs = append(errs, &Problem{File: path, Msg: "secrets bundle: " + e.Error()})
		}
		sum := sha256.Sum256(data)
		ls.keepSum(path, sum)
		ls.bundles[name] = bundle{file: path, bundle: b, sum: sum}
	}
	return errs
}

// emptyDir says whether path, of file info fi, is an empty directory: what
// Kubernetes mounts for a subPath whose key the Secret or ConfigMap lacks,
// so that a deployment mounting secrets.yaml works without a bundle too.
func emptyDir(path string, fi os.FileInfo) bool {
	if !fi.IsDir() {
		return false
	}
	entries, err := os.ReadDir(path)
	return err == nil && len(entries) == 0
}
