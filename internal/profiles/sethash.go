package profiles

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// The profile set's hash. Replicas of tinderbox read the same profiles
// tree (a git checkout, a ConfigMap, git-sync) but may briefly disagree
// while a change reaches each of them; the hash says which tree a replica
// serves. It is a digest of what a load reads, by path and content: the
// same tree gives the same hash on every host, whatever the files'
// modification times and whatever order they were read in, and a change
// of one byte of one input gives another.

// setHash is the hex SHA-256 of the directory's input files, as the load
// that made ls read them: defaults.yaml and secrets.yaml at the top, and
// every *.yaml file under groups/, machines/, schematics/, configs/,
// patches/ and secrets/ (the files ls lists, overlay applied). For each
// file, in the order of its path relative to dir (slash-separated), the
// digest takes the path's length and bytes, then the SHA-256 of the
// content. Files a load does not read (README.md, dot files) are not part
// of it. It fails when an input cannot be read.
func (ls *layers) setHash(dir string, overlay map[string][]byte) (string, error) {
	paths := map[string]string{} // relative path → path
	for _, top := range []string{"defaults.yaml", "secrets.yaml"} {
		path := filepath.Join(dir, top)
		if data, ok := overlay[top]; ok {
			if data != nil {
				paths[top] = path
			}
			continue
		}
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			paths[top] = path
		}
	}
	for sub, files := range ls.files {
		for name, path := range files {
			paths[sub+"/"+name+".yaml"] = path
		}
	}
	rels := slices.Sorted(maps.Keys(paths))
	sums := make([][sha256.Size]byte, len(rels))
	errs := make([]error, len(rels))
	each(len(rels), func(i int) {
		rel, path := rels[i], paths[rels[i]]
		if data, ok := overlay[rel]; ok {
			sums[i] = sha256.Sum256(data)
			return
		}
		if sum, ok := ls.keptSum(path); ok {
			sums[i] = sum // a layer file or bundle, as the load read it
			return
		}
		if sub := filepath.Base(filepath.Dir(path)); sub == "configs" || sub == "patches" {
			// Read once per load: the renders read them through the same
			// cache.
			ft := ls.text(path)
			sums[i], errs[i] = ft.sum, ft.err
			return
		}
		data, err := os.ReadFile(path)
		sums[i], errs[i] = sha256.Sum256(data), err
	})
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for i, rel := range rels {
		if errs[i] != nil {
			return "", &Problem{File: paths[rel], Msg: errs[i].Error()}
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(rel)))])
		h.Write([]byte(rel))
		h.Write(sums[i][:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// keepSum records the SHA-256 of the file at path as this load read it.
// It is safe for concurrent use.
func (ls *layers) keepSum(path string, sum [sha256.Size]byte) {
	ls.sumMu.Lock()
	defer ls.sumMu.Unlock()
	if ls.sums == nil {
		ls.sums = map[string][sha256.Size]byte{}
	}
	ls.sums[path] = sum
}

// keptSum is what keepSum recorded for path.
func (ls *layers) keptSum(path string) ([sha256.Size]byte, bool) {
	ls.sumMu.Lock()
	defer ls.sumMu.Unlock()
	s, ok := ls.sums[path]
	return s, ok
}
