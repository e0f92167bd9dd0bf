package render

import (
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

// fillSecrets sets the values of in.Secrets, the cluster's secrets bundle,
// in the v1alpha1 document, for its machine.type (secrets.Fills says which
// go to which type). A secret the config already carries, from its base
// config or a patch, is a problem located there: a warning when it is
// the bundle's own value (harmless, but keys stay in the config), an error
// when it differs or is one the machine's type does not get, since the
// machine would then hold a PKI the rest of the cluster does not share or
// keys it should not have. Nothing is filled when there is no bundle, no
// v1alpha1 document or no valid machine.type (validate reports those).
func fillSecrets(docs []any, in Input) []*Problem {
	if in.Secrets == nil {
		return nil
	}
	i := mainDoc(docs)
	if i < 0 {
		return nil
	}
	doc := docs[i].(Map)
	typ, _ := lookup(doc, "machine", "type").(string)
	fills, err := in.Secrets.Fills(typ)
	if err != nil {
		return nil
	}
	want := map[string]secrets.Fill{}
	for _, f := range fills {
		want[strings.Join(f.Path, ".")] = f
	}
	bundle := in.SecretsFile
	if bundle == "" {
		bundle = "the secrets bundle"
	}
	var probs []*Problem
	for _, path := range secrets.Paths() {
		v := lookup(doc, path...)
		if v == nil || v == "" {
			continue
		}
		f, filled := want[strings.Join(path, ".")]
		p := &Problem{Path: pathString(path), segs: path, value: v}
		switch {
		case filled && v == f.Value:
			p.Warning = true
			p.Msg = "the config carries this secret although " + bundle + " is present (same value as its " + f.Field + "): remove it from the config, the bundle fills it in"
		case filled && f.Field != "":
			p.Msg = "differs from " + f.Field + " of " + bundle + ": a config must not carry its own PKI when a secrets bundle is present; remove it, the bundle fills it in"
		case filled:
			p.Msg = "a " + typ + " config holds no private key here (talosctl leaves it empty), and " + bundle + " is present: remove it"
		default:
			p.Msg = "a " + typ + " config does not get this secret from " + bundle + " (talosctl gives it only to control planes, and only the encryption secret the bundle holds): remove it"
		}
		probs = append(probs, p)
	}
	for _, f := range fills {
		doc = setPath(doc, f.Value, f.Path...)
	}
	docs[i] = doc
	return probs
}
