package ipxe

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
)

// HTTPPath is where Handler is mounted on the boot HTTP server; UEFI HTTP
// boot clients are pointed at http://{advertise}:{port}/boot/{file}, file being
// the build ipxe.efiX64 names (or ipxe-arm64.efi).
const HTTPPath = "/boot/{file}"

// Handler serves the files of root read-only over HTTP, for UEFI HTTP boot
// clients: GET and HEAD, with Content-Length, Last-Modified and Range (via
// http.ServeContent). The file name is the request's "file" path value, so
// mount it at HTTPPath. Refused names get 400, missing files 404. A nil
// log discards.
func Handler(root *Root, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// chi matches on the escaped path when there is one: "..%2F" must
		// reach the name check as "../".
		name, err := url.PathUnescape(r.PathValue("file"))
		if err != nil {
			http.Error(w, "bad file name escaping", http.StatusBadRequest)
			return
		}
		f, err := root.OpenFile(name)
		if err != nil {
			var ne *NameError
			switch {
			case errors.As(err, &ne):
				log.Warn("ipxe: refused HTTP request", "file", name, "remote", r.RemoteAddr, "err", ne.Err)
				http.Error(w, ne.Err.Error(), http.StatusBadRequest)
			case errors.Is(err, fs.ErrNotExist):
				log.Info("ipxe: file not found", "file", name, "remote", r.RemoteAddr)
				http.Error(w, "file not found", http.StatusNotFound)
			default:
				log.Error("ipxe: open", "file", name, "err", err)
				http.Error(w, "cannot read file", http.StatusInternalServerError)
			}
			return
		}
		defer func() { _ = f.Close() }()
		fi, err := f.Stat()
		if err != nil {
			log.Error("ipxe: stat", "file", name, "err", err)
			http.Error(w, "cannot read file", http.StatusInternalServerError)
			return
		}
		// iPXE binaries are opaque firmware images; no sniffing.
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, name, fi.ModTime(), f)
	})
}
