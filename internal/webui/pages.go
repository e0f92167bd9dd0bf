package webui

import (
	"net/http"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/machineview"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func (u *UI) machinesPage(w http.ResponseWriter, _ *http.Request) {
	ms, err := u.views.List()
	if err != nil {
		u.render(w, http.StatusInternalServerError, "machines", "Machines", map[string]any{"Error": err.Error()})
		return
	}
	u.render(w, http.StatusOK, "machines", "Machines", map[string]any{"Machines": ms, "States": machine.States})
}

type machineData struct {
	Error     string
	Machine   api.Machine
	Steps     []machineview.Step
	Events    []machine.Event
	Profile   string
	ETag      string
	File      string
	Exists    bool
	Editable  bool
	ReadOnly  string // why Save is off, when the directory cannot be written
	Config    string
	ConfigOK  bool
	ConfigErr string
	// Diff is how the config changed since it was last served; DiffErr
	// says why there is none (never served, say).
	Diff    api.ConfigDiff
	DiffErr string
}

func (u *UI) machinePage(w http.ResponseWriter, r *http.Request) {
	mac, err := admin.ParseMAC(r)
	if err != nil {
		u.render(w, http.StatusBadRequest, "machine", "Machine", machineData{Error: err.Error()})
		return
	}
	m, _, err := u.views.Get(mac)
	if err != nil {
		u.render(w, http.StatusInternalServerError, "machine", "Machine", machineData{Error: err.Error()})
		return
	}
	d := machineData{Machine: m, Steps: machineview.Timeline(m.Events), Events: m.Events}
	if u.opts.Files != nil {
		f, err := u.opts.Files.MachineFile(mac)
		if err != nil {
			u.render(w, http.StatusInternalServerError, "machine", "Machine", machineData{Error: err.Error()})
			return
		}
		d.Editable, d.File = true, f.Rel
		if err := u.opts.Files.Writable(); err != nil {
			d.ReadOnly = err.Error()
		}
		if f.Exists() {
			d.Profile, d.ETag, d.Exists = string(f.Data), f.ETag, true
		} else {
			d.Profile = u.newProfile(mac)
		}
	}
	if m.Profile {
		cfg, err := u.opts.Profiles.Render(r.Context(), mac)
		if err != nil {
			d.ConfigErr = err.Error()
		} else {
			d.Config, d.ConfigOK = machineview.MaskSecrets(cfg), true
		}
		if d.Diff, err = u.opts.API.ConfigDiff(r.Context(), mac); err != nil {
			d.DiffErr = err.Error()
		}
	}
	u.render(w, http.StatusOK, "machine", mac.String(), d)
}

// newProfile is the editor's text for a machine without a profile file:
// a hostname from its MAC, and what defaults.yaml gives it, commented, to
// override.
func (u *UI) newProfile(mac machine.MAC) string {
	def := u.opts.Profiles.Maintenance()
	var b strings.Builder
	b.WriteString("# New profile for " + mac.String() + ". defaults.yaml applies first;\n")
	b.WriteString("# uncomment a line to override it for this machine.\n")
	b.WriteString("hostname: node-" + strings.ReplaceAll(mac.String()[9:], ":", "") + "\n")
	b.WriteString("# groups: []\n")
	b.WriteString("# talos:\n")
	b.WriteString("#   version: " + orDefault(def.Version, "v1.12.7") + "\n")
	b.WriteString("#   arch: " + orDefault(string(def.Arch), "amd64") + "\n")
	b.WriteString("# install: once\n")
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (u *UI) cachePage(w http.ResponseWriter, r *http.Request) {
	a := u.opts.API
	d := map[string]any{"Factory": a.FactoryStatus(r.Context()), "Targets": a.PrefetchTargets()}
	l, ok := a.CacheListing()
	d["Enabled"] = ok
	if ok {
		d["Entries"], d["Size"], d["Prefetch"] = l.Entries, l.Size, l.Prefetch
	}
	u.render(w, http.StatusOK, "cache", "Cache", d)
}

func (u *UI) statusPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, http.StatusOK, "status", "Status", u.opts.API.Status(r.Context()))
}
