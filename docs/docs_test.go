// Package docs_test checks the repository's documentation as a whole: every
// Go package has a doc comment, no file outside docs/ points at a document
// that is not in the repository, and every relative Markdown link resolves.
package docs_test

import (
	"bytes"
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// moduleRoot returns the directory holding go.mod, walking up from the
// test's working directory (docs/).
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// skipDir says whether a directory is outside the module's own packages:
// hidden directories, testdata, and nested modules.
func skipDir(root, p string, d fs.DirEntry) bool {
	if p == root {
		return false
	}
	name := d.Name()
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" {
		return true
	}
	_, err := os.Stat(filepath.Join(p, "go.mod"))
	return err == nil
}

// TestPackageDocs checks that every Go package in the module has a doc
// comment: "Package <name> …" for a library, any non-empty comment for a
// command (package main).
func TestPackageDocs(t *testing.T) {
	root := moduleRoot(t)
	// dir → its non-test Go files.
	pkgs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(root, p, d) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			pkgs[filepath.Dir(p)] = append(pkgs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatalf("no Go package found under %s", root)
	}

	var offenders []string
	fset := token.NewFileSet()
	for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
		rel, _ := filepath.Rel(root, dir)
		name, docs := "", 0
		for _, file := range pkgs[dir] {
			f, err := parser.ParseFile(fset, file, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parse %s: %v", file, err)
			}
			name = f.Name.Name
			if f.Doc == nil {
				continue
			}
			docs++
			text := strings.TrimSpace(f.Doc.Text())
			frel, _ := filepath.Rel(root, file)
			switch {
			case text == "":
				offenders = append(offenders, frel+": empty package doc comment")
			case name != "main" && !startsWithWord(text, "Package "+name):
				offenders = append(offenders, frel+": package doc comment must start \"Package "+name+" \", got \""+firstLine(text)+"\"")
			}
		}
		if docs == 0 {
			want := "// Package " + name + " …"
			if name == "main" {
				want = "// Command <name> …"
			}
			offenders = append(offenders, rel+": package "+name+" has no doc comment (add "+want+" above the package clause of one file)")
		}
	}
	if len(offenders) > 0 {
		t.Errorf("packages without a proper doc comment:\n  %s", strings.Join(offenders, "\n  "))
	}
}

// startsWithWord reports whether text starts with prefix followed by a
// space, a line break, or nothing.
func startsWithWord(text, prefix string) bool {
	rest, ok := strings.CutPrefix(text, prefix)
	return ok && (rest == "" || unicode.IsSpace(rune(rest[0])))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// repoFiles returns the repository's files, relative to root with forward
// slashes: the files git tracks when git is available, else every file
// outside hidden directories.
func repoFiles(t *testing.T, root string) []string {
	t.Helper()
	if git, err := exec.LookPath("git"); err == nil {
		cmd := exec.Command(git, "ls-files", "-z")
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil {
			var files []string
			for f := range strings.SplitSeq(string(out), "\x00") {
				if f != "" {
					files = append(files, f)
				}
			}
			return files
		}
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// readText returns a file's bytes, or ok false for a file that is gone
// (deleted but still tracked) or binary (a NUL in its first 8 KiB).
func readText(t *testing.T, p string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(b[:min(len(b), 8<<10)], 0) >= 0 {
		return nil, false
	}
	return b, true
}

// outsideDocs matches a mention of the design documents that exist only
// outside the repository (the contract and protocol notes, by file name or
// by section sign, or their folder); no file but those in docs/ may
// mention them. It is a pattern, not a list of the names, so that this
// file does not mention them either.
var outsideDocs = regexp.MustCompile(`\b(?:CONTRACT|PROTOCOL)(?:\.md| §)|\.\./shared/spec`)

// TestNoOutsideDocuments checks that no file outside docs/ refers to a
// document a reader of the repository cannot open.
func TestNoOutsideDocuments(t *testing.T) {
	root := moduleRoot(t)
	var offenders []string
	for _, f := range repoFiles(t, root) {
		if strings.HasPrefix(f, "docs/") {
			continue
		}
		b, ok := readText(t, filepath.Join(root, filepath.FromSlash(f)))
		if !ok {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, s := range outsideDocs.FindAllString(line, -1) {
				offenders = append(offenders, f+":"+strconv.Itoa(i+1)+": mentions "+s)
			}
		}
	}
	if len(offenders) > 0 {
		t.Errorf("files refer to documents outside the repository (point into docs/ or at the original source instead):\n  %s",
			strings.Join(offenders, "\n  "))
	}
}

var (
	// fence matches a fenced code block, whose contents are not Markdown.
	fence = regexp.MustCompile("(?ms)^[ \t]*(```|~~~).*?^[ \t]*(```|~~~)[ \t]*$")
	// codeSpan matches inline code.
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	// link matches an inline link or image target: [text](target "title").
	link = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// heading matches an ATX heading line.
	heading = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t#]*$`)
	// scheme matches an absolute URL's scheme.
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// stripCode blanks code blocks and spans, keeping line breaks so that line
// numbers stay right.
func stripCode(s string) string {
	blank := func(m string) string {
		return strings.Map(func(r rune) rune {
			if r == '\n' {
				return r
			}
			return ' '
		}, m)
	}
	s = fence.ReplaceAllStringFunc(s, blank)
	return codeSpan.ReplaceAllStringFunc(s, blank)
}

// anchors returns the fragment identifiers GitHub gives a Markdown file's
// headings: lower case, punctuation dropped, spaces as hyphens, repeats
// numbered.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// TestMarkdownLinks checks that every relative link in the repository's
// Markdown files names a file that exists, and, for a link into a Markdown
// file with a fragment, a heading of that file.
func TestMarkdownLinks(t *testing.T) {
	root := moduleRoot(t)
	var offenders []string
	for _, f := range repoFiles(t, root) {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, ok := readText(t, filepath.Join(root, filepath.FromSlash(f)))
		if !ok {
			continue
		}
		text := stripCode(string(b))
		for _, m := range link.FindAllStringSubmatchIndex(text, -1) {
			target := text[m[2]:m[3]]
			line := strings.Count(text[:m[0]], "\n") + 1
			where := f + ":" + strconv.Itoa(line) + ": " + target
			if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
				continue // an absolute URL
			}
			file, frag, _ := strings.Cut(target, "#")
			file, _, _ = strings.Cut(file, "?")
			dest := f
			if file != "" {
				if strings.HasPrefix(file, "/") {
					offenders = append(offenders, where+": absolute path; write it relative to the file")
					continue
				}
				dest = path.Join(path.Dir(f), file)
				if strings.HasPrefix(dest, "../") {
					offenders = append(offenders, where+": leaves the repository")
					continue
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
					offenders = append(offenders, where+": no such file")
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			db, ok := readText(t, filepath.Join(root, filepath.FromSlash(dest)))
			if ok && !anchors(stripFences(string(db)))[frag] {
				offenders = append(offenders, where+": no heading #"+frag+" in "+dest)
			}
		}
	}
	if len(offenders) > 0 {
		t.Errorf("broken relative links in Markdown files:\n  %s", strings.Join(offenders, "\n  "))
	}
}

// stripFences blanks fenced code blocks only: headings keep their inline
// code, which GitHub keeps in the anchor.
func stripFences(s string) string {
	return fence.ReplaceAllString(s, "")
}
