// Package talosschema checks Talos machine config documents against the
// interface of a Talos release: the keys each document kind accepts, the
// types and enumerated values of their values, the document kinds and
// apiVersions the release reads, and the keys it still decodes but has
// deprecated in favour of other documents.
//
// The data (data/v1.X.json, one file per Talos minor release) is generated
// by `go generate` (see gen/) from Talos' published config schema
// (pkg/machinery/config/schemas/config.schema.json of each release) joined
// with the YAML keys each release's v1alpha1 decoder accepts, which include
// deprecated keys the schema no longer lists. Talos decodes strictly: a key
// it does not know fails the whole config on the node.
package talosschema

//go:generate go run ./gen
