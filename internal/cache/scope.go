package cache

import (
	"strings"
	"sync/atomic"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Scope says which assets are wanted: the boot HTTP route serves and
// fetches only those, and eviction removes the others first.
type Scope interface {
	// Allowed reports whether k belongs to a wanted image. It is called
	// for every asset request, and with the cache's lock held while
	// entries are weighed for eviction: it must be cheap, safe for
	// concurrent use, and must not call the Cache.
	Allowed(k Key) bool
}

// Profiles gives the profile set being served. *profiles.Store implements
// it; the set may change at any time (a reload).
type Profiles interface {
	Set() *profiles.Set
}

// ProfileScope is the Scope of the daemon: the images the profile set being
// served boots — each machine's, and the maintenance image of defaults.yaml
// when unknown machines boot it (`unknown: maintenance`) — plus a fixed
// allow-list (config cache.allow). An image whose profile names no
// architecture is wanted for both, since the booting machine's own decides.
// It is safe for concurrent use.
type ProfileScope struct {
	src   Profiles
	allow map[Key]struct{}
	// memo holds the keys of the last set seen: a Set is immutable, so the
	// keys are computed once per loaded set and Allowed is a pointer
	// compare and a map lookup.
	memo atomic.Pointer[scopeMemo]
}

type scopeMemo struct {
	set  *profiles.Set
	keys map[Key]struct{}
}

// NewProfileScope returns the scope of src's current set and of allow,
// whose targets with an empty Arch stand for both architectures. It fails
// on a target that is not a valid image name.
func NewProfileScope(src Profiles, allow []Target) (*ProfileScope, error) {
	s := &ProfileScope{src: src, allow: map[Key]struct{}{}}
	for _, t := range allow {
		if err := addImage(s.allow, t.Schematic, t.Version, t.Arch); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Allowed reports whether k is an asset of an image the current profiles
// boot or the allow-list names.
func (s *ProfileScope) Allowed(k Key) bool {
	if _, ok := s.allow[k]; ok {
		return true
	}
	_, ok := s.keys()[k]
	return ok
}

// keys returns the asset keys of the current set's images.
func (s *ProfileScope) keys() map[Key]struct{} {
	set := s.src.Set()
	if m := s.memo.Load(); m != nil && m.set == set {
		return m.keys
	}
	m := &scopeMemo{set: set, keys: ReferencedKeys(set)}
	s.memo.Store(m)
	return m.keys
}

// ReferencedKeys returns the asset keys of every image set boots: each
// machine's, and the maintenance image when the unknown-machine policy is
// maintenance. An image without a version or schematic boots nothing; one
// without an architecture stands for both.
func ReferencedKeys(set *profiles.Set) map[Key]struct{} {
	machines := set.Machines()
	// Most sets boot a handful of images, but the map is sized for the
	// worst case, every machine its own image on both architectures: it
	// is built once per loaded set, and growing it costs more than that.
	out := make(map[Key]struct{}, 6*(len(machines)+1))
	add := func(t profiles.Talos) {
		if t.Version == "" || t.SchematicID == "" {
			return
		}
		// Built without NewKey's checks, which cost more than the rest:
		// a key that would fail them can never equal a request's key,
		// which passed them, so it only wastes a map slot.
		arches := factory.Arches
		if t.Arch != "" {
			arches = []machine.Arch{t.Arch}
		}
		v := "v" + strings.TrimPrefix(t.Version, "v")
		for _, a := range arches {
			for _, f := range factory.Files(a) {
				out[Key{Schematic: t.SchematicID, Version: v, File: f}] = struct{}{}
			}
		}
	}
	for _, p := range machines {
		add(p.Talos)
	}
	if set.Unknown() == machine.UnknownMaintenance {
		add(set.Maintenance())
	}
	return out
}

// addImage adds the PXE files of an image to keys, for arch or, when it is
// empty, for every architecture.
func addImage(keys map[Key]struct{}, schematic, version string, arch machine.Arch) error {
	arches := factory.Arches
	if arch != "" {
		arches = []machine.Arch{arch}
	}
	for _, a := range arches {
		ks, err := Target{Schematic: schematic, Version: version, Arch: a}.Keys()
		if err != nil {
			return err
		}
		for _, k := range ks {
			keys[k] = struct{}{}
		}
	}
	return nil
}
