# Shared helpers for the scripts/bench-*.sh scripts (source it; bash only).
#
# Method (issue 20): every figure is a set of paired rounds run in the same
# invocation, tinderbox and its anchor alternating (A B A B ...), so that a
# busy machine slows both alike. A figure is reported as its median with the
# minimum and maximum of the rounds, never the best round, and a ratio is the
# median of the per-round ratios.
#
# Records are lines "KEY VALUE" appended to a file; KEY names one figure
# (e.g. "ipxe/c32/tinderbox"), VALUE is a number in the unit the caller
# prints.

# bench_record FILE KEY VALUE: append one round's value for KEY.
bench_record() {
	printf '%s %s\n' "$2" "$3" >>"$1"
}

# bench_stat FILE KEY: print "MEDIAN MIN MAX N" of KEY's values (N=0 and
# zeros when KEY has none). For an even N the median is the mean of the two
# middle values.
bench_stat() {
	awk -v k="$2" '
	$1 == k { v[++n] = $2 + 0 }
	END {
		if (n == 0) { print 0, 0, 0, 0; exit }
		for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
		m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		print m, v[1], v[n], n
	}' "$1"
}

# bench_ratio FILE KEY_A KEY_B OUT_KEY: record, for every round i where
# both have an i-th value, KEY_A[i] / KEY_B[i] under OUT_KEY (the paired
# ratio, so each round compares runs made side by side).
bench_ratio() {
	awk -v a="$2" -v b="$3" -v o="$4" '
	$1 == a { va[++na] = $2 + 0 }
	$1 == b { vb[++nb] = $2 + 0 }
	END { for (i = 1; i <= na && i <= nb; i++) if (vb[i] != 0) printf "%s %.6f\n", o, va[i] / vb[i] }' "$1" >>"$1.ratio"
	cat "$1.ratio" >>"$1"
	rm -f "$1.ratio"
}

# bench_cell FILE KEY FORMAT: print KEY as "MEDIAN (MIN-MAX)" with the
# printf FORMAT (e.g. %.0f) for each number; "-" when KEY has no value.
bench_cell() {
	local s
	read -r -a s < <(bench_stat "$1" "$2")
	if [ "${s[3]}" = 0 ]; then
		printf -- '-'
		return
	fi
	# shellcheck disable=SC2059 # the format is the caller's on purpose
	printf "$3 ($3–$3)" "${s[0]}" "${s[1]}" "${s[2]}"
}

# bench_goal FILE KEY OP LIMIT: exit status 0 when KEY's median OP LIMIT
# holds (OP is one of < <= > >=), 1 otherwise or when KEY has no value.
bench_goal() {
	local s
	read -r -a s < <(bench_stat "$1" "$2")
	[ "${s[3]}" != 0 ] || return 1
	awk -v m="${s[0]}" -v op="$3" -v l="$4" 'BEGIN {
		ok = (op == "<" && m < l) || (op == "<=" && m <= l) || (op == ">" && m > l) || (op == ">=" && m >= l)
		exit !ok
	}'
}

# bench_nginx_conf DIR LISTEN ROOT: writes DIR/nginx.conf (DIR created),
# the large-file anchor: nginx in the foreground, its pid, log and temp
# files under DIR, serving ROOT on LISTEN (address:port) with sendfile and
# tcp_nopush, no access log, keep-alive. Run it with
# nginx -p DIR -c DIR/nginx.conf.
bench_nginx_conf() {
	local dir=$1 listen=$2 root=$3
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	default_type application/octet-stream;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	server {
		listen $listen;
		root $root;
	}
}
NGINX
}
