// Package web holds the admin web UI's files: html/template pages under
// templates/ and the style sheet and script under static/, embedded into
// the binary so `go build` needs no front-end step and the UI fetches
// nothing from elsewhere. Package webui renders and serves them.
package web

import "embed"

// FS holds templates/*.html and static/*.
//
//go:embed templates static
var FS embed.FS
