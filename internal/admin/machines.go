package admin

import (
	"net/http"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	out, err := a.views.List()
	if err != nil {
		a.internal(w, "list machines", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// lookup returns the machine's view with its events; it answers 404
// itself for a MAC with neither a record nor a profile.
func (a *API) lookup(w http.ResponseWriter, mac machine.MAC) (api.Machine, bool) {
	m, found, err := a.views.Get(mac)
	if err != nil {
		a.internal(w, "get machine", err)
		return api.Machine{}, false
	}
	if !found {
		WriteError(w, http.StatusNotFound, "no machine "+mac.String()+": it has neither booted through tinderbox nor a profile")
		return api.Machine{}, false
	}
	return m, true
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if m, ok := a.lookup(w, mac); ok {
		if m.Events == nil {
			m.Events = []machine.Event{}
		}
		writeJSON(w, http.StatusOK, m)
	}
}

func (a *API) forget(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	found, err := a.opts.Store.Forget(mac)
	if err != nil {
		a.internal(w, "forget machine", err)
		return
	}
	if !found {
		WriteError(w, http.StatusNotFound, "no state recorded for "+mac.String())
		return
	}
	a.log.Info("machine forgotten", "mac", mac)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) reinstall(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if _, ok := a.lookup(w, mac); !ok {
		return
	}
	// Without a profile the machine boots as an unknown one (maintenance
	// or nothing, by defaults.yaml's unknown): re-arming it would promise
	// an install that cannot happen.
	if _, known := a.opts.Profiles.Machine(mac); !known {
		WriteError(w, http.StatusConflict, "no reinstall for "+mac.String()+": it has no profile, so it boots as an unknown machine and installs nothing; add machines/"+mac.Dashed()+".yaml to the profiles first")
		return
	}
	rec, err := a.opts.Store.Update(mac, func(m *state.Machine, _ bool) error {
		m.Reinstall()
		m.Events = append(m.Events, a.opts.Store.Event(machine.EventReinstall, "", 0))
		return nil
	})
	if err != nil {
		a.internal(w, "reinstall", err)
		return
	}
	a.log.Info("machine re-armed for reinstall", "mac", mac)
	m := a.views.Of(mac, rec.Summary(), true)
	m.Events = rec.Events
	writeJSON(w, http.StatusOK, m)
}

func (a *API) config(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if _, known := a.opts.Profiles.Machine(mac); !known {
		WriteError(w, http.StatusNotFound, "no profile for "+mac.String())
		return
	}
	body, set, err := a.opts.Profiles.Rendered(r.Context(), mac)
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set(api.ProfileSetHeader, set)
	_, _ = w.Write(body)
}

func (a *API) script(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	res, err := a.opts.Scripts.Script(r.Context(), mac, "", r.URL.Query().Get("arch"), "", false)
	if err != nil {
		status := res.Status
		if status < 400 {
			status = http.StatusInternalServerError
		}
		WriteError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Tinderbox-Action", string(res.Action))
	w.Header().Set("X-Tinderbox-Status", http.StatusText(res.Status))
	_, _ = w.Write([]byte(res.Body))
}
