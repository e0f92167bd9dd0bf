package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/tinderbox-boot/tinderbox/internal/served"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// DiffError is why ConfigDiff has no answer, with the HTTP status the API
// gives it: 404 for a machine never served a config or without a profile
// now, 422 for a profile that does not render, 500 for a database error.
type DiffError struct {
	Status int
	Msg    string
}

func (e *DiffError) Error() string { return e.Msg }

// ConfigDiff compares the config last served to mac (as the state store
// keeps it, secrets masked) with the config it would be served now,
// masked the same way. The error is a *DiffError.
func (a *API) ConfigDiff(ctx context.Context, mac machine.MAC) (api.ConfigDiff, error) {
	sv, ok, err := a.opts.Store.Served(mac)
	if err != nil {
		return api.ConfigDiff{}, &DiffError{http.StatusInternalServerError, err.Error()}
	}
	if !ok {
		return api.ConfigDiff{}, &DiffError{http.StatusNotFound, mac.String() + " has not been served a config (tinderbox keeps the one it serves at /config/" + mac.Dashed() + " when the machine installs): nothing to compare"}
	}
	if _, known := a.opts.Profiles.Machine(mac); !known {
		return api.ConfigDiff{}, &DiffError{http.StatusNotFound, "no profile for " + mac.String() + ": it would be served no config now"}
	}
	body, set, err := a.opts.Profiles.Rendered(ctx, mac)
	if err != nil {
		return api.ConfigDiff{}, &DiffError{http.StatusUnprocessableEntity, err.Error()}
	}
	cur := served.Take(body, a.opts.Store.MaskTag)
	out := api.ConfigDiff{MAC: mac, ServedAt: sv.At, ServedHash: sv.Hash, CurrentHash: cur.Hash, Changed: sv.Hash != cur.Hash,
		ServedProfileSet: sv.ProfileSet, CurrentProfileSet: set}
	if !out.Changed {
		return out, nil
	}
	switch {
	case sv.Note != "":
		out.Note = "served config: " + sv.Note
	case cur.Masked == nil:
		out.Note = "current config: " + cur.Note
	default:
		out.Diff = served.Diff("served", "current", []byte(sv.Config), cur.Masked)
		if out.Diff == "" {
			out.Note = "the configs differ only where masking hides it"
		}
	}
	return out, nil
}

func (a *API) configDiff(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	d, err := a.ConfigDiff(r.Context(), mac)
	var de *DiffError
	if errors.As(err, &de) {
		if de.Status == http.StatusInternalServerError {
			a.internal(w, "config diff", err)
			return
		}
		WriteError(w, de.Status, de.Msg)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
