package bootflow

import (
	"net/url"
	"strings"
)

// maxFastPairs is the most query pairs scriptQuery reads itself: iPXE
// sends three (GenericScript's mac, uuid and arch). A longer query goes
// to url.ParseQuery, whose limit on the number of pairs (GODEBUG
// urlmaxqueryparams, 10000 by default) then applies as it does to
// url.URL.Query.
const maxFastPairs = 16

// scriptQuery returns the mac, uuid and arch values of u's query, each
// "" when absent, exactly as u.Query().Get would: the first value of
// each, pairs split at "&", a pair holding ";" or a bad %-escape skipped,
// keys and values unescaped (url.QueryUnescape). Unlike u.Query it
// builds no map, and it allocates nothing for a query without escapes.
func scriptQuery(u *url.URL) (mac, uuid, arch string) {
	query := u.RawQuery
	if strings.Count(query, "&") >= maxFastPairs {
		q := u.Query()
		return q.Get("mac"), q.Get("uuid"), q.Get("arch")
	}
	var seenMAC, seenUUID, seenArch bool
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(key)
		if err != nil {
			continue
		}
		var dst *string
		var seen *bool
		switch key {
		case "mac":
			dst, seen = &mac, &seenMAC
		case "uuid":
			dst, seen = &uuid, &seenUUID
		case "arch":
			dst, seen = &arch, &seenArch
		default:
			continue
		}
		if *seen {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue
		}
		*dst, *seen = value, true
	}
	return mac, uuid, arch
}
