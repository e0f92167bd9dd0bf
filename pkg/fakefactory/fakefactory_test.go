package fakefactory_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

const id = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

// TestQuirks: the fake answers as the real factory does.
func TestQuirks(t *testing.T) {
	f, err := fakefactory.Start(fakefactory.Options{Redirect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	resp, err := http.Post(f.URL+"/schematics", "application/yaml", strings.NewReader("customization:\n  extraKernelArgs: [quiet]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 201 || len(out.ID) != 64 {
		t.Errorf("POST /schematics: got %d %q, want 201 and a 64-hex ID", resp.StatusCode, out.ID)
	}

	resp, err = http.Post(f.URL+"/schematics", "application/yaml", strings.NewReader("customisation: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(msg), "customisation") {
		t.Errorf("unknown field: got %d %q, want 400 naming the field", resp.StatusCode, msg)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(f.URL + "/image/" + id + "/1.12.7/kernel-amd64")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), f.BlobURL) {
		t.Errorf("GET image: got %d to %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), f.BlobURL)
	}

	for _, ver := range []string{"v1.12.7", "1.12.7"} {
		req, _ := http.NewRequest("GET", f.URL+"/image/"+id+"/"+ver+"/kernel-amd64", nil)
		req.Header.Set("Range", "bytes=0-9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, f.Asset("kernel-amd64")) {
			t.Errorf("%s with Range: got %d, %d bytes; want 200 and the whole file", ver, resp.StatusCode, len(body))
		}
		for _, h := range []string{"ETag", "Accept-Ranges", "Cache-Control"} {
			if resp.Header.Get(h) != "" {
				t.Errorf("%s: got header %s, want none", ver, h)
			}
		}
	}
	if got := f.Count("/image/" + id + "/1.12.7/kernel-amd64"); got != 2 {
		t.Errorf("got count %d, want 2", got)
	}
}

func TestParseFault(t *testing.T) {
	for f := fakefactory.None; f <= fakefactory.Stall; f++ {
		got, err := fakefactory.ParseFault(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFault(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	if _, err := fakefactory.ParseFault("explode"); err == nil {
		t.Error("ParseFault(explode): got no error")
	}
}
