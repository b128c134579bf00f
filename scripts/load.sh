#!/usr/bin/env bash
# Load run: proxy CPU per request, guestgate against a bare pingora pass-through (same
# pingora, same upstream, same run), from /proc, over interleaved rounds.
#
#   ./scripts/load.sh [seconds-per-run] [connections] [rounds] [sessions]
#
# Variants, each driven by wrk with one connection pool for `seconds` per round:
#   bare     examples/passthrough (pingora, no filters)
#   pass     guestgate, a request without a guest session (mixed mode: passed through)
#   allow    guestgate, a guest session, a request its share allows
#   deny     guestgate, the same session, another case's document (refused by guestgate)
#   nginx    nginx proxy_pass with keepalive, one worker (only when nginx is installed)
# Every request carries one cookie of the same length, so every proxy reads the same
# bytes: guestgate's session for allow and deny (which guestgate strips), and the app's
# own session, as staff traffic would carry, for bare, pass and nginx (which they forward).
# guestgate runs the shipped config/guestgate.toml (log level, audit file, policies), with
# only addresses, paths and one worker thread overridden, as in the environment.
#
# Each proxy is pinned to CPU 0 and wrk and the app to the others where `taskset` works,
# so the proxy's CPU is its own. CPU is utime+stime of every thread of the proxy
# (/proc/PID/stat) across the run, divided by the requests wrk completed; the kernel's
# part of it (stime) is shown apart. The order of variants rotates each round; the
# median per variant is reported, and the ratio bare/variant ("0.90x" = the variant
# needs 1/0.9 of bare pingora's CPU per request).
#
# Then memory: RSS of guestgate after `sessions` (10000) distinct guest sessions, each
# with its own share, have each made requests (every token in the verified-token cache).
# Only loopback addresses are used.
#
#   ./scripts/load.sh --instructions [requests]
#
# The same variants under valgrind's callgrind instead: user-space instructions per
# request (default 2000 requests per variant over one keep-alive connection, after 200
# to warm up). Instruction counts repeat to within a fraction of a percent from run to
# run, whatever else the machine does, so they show what one change saved where CPU time
# on a shared machine cannot; they leave out the kernel's share (the same socket calls
# for every variant) and cache misses. The audit writer thread is shown on its own:
# valgrind hides the CPU's SHA instructions, so its HMAC counts several times what it
# costs natively. With LOAD_KEEP_DUMPS=DIR the callgrind dumps are kept there as
# VARIANT.callgrind, for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=cpu
if [ "${1:-}" = "--instructions" ]; then mode=instructions; shift; fi
dur=${1:-5}; conns=${2:-32}; rounds=${3:-5}; sessions=${4:-10000}
requests=${1:-2000}
./scripts/setup.sh >/dev/null
cargo build --quiet --release --bins --example passthrough
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cores=$(nproc)
pin_proxy=(); pin_load=()
if command -v taskset >/dev/null 2>&1 && [ "$cores" -ge 2 ] && taskset -c 0 true 2>/dev/null; then
  pin_proxy=(taskset -c 0); pin_load=(taskset -c "1-$((cores - 1))")
fi
wrap_bare=("${pin_proxy[@]}"); wrap_gg=("${pin_proxy[@]}")
if [ $mode = instructions ]; then
  wrap_bare=(valgrind --tool=callgrind "--callgrind-out-file=$work/cg.bare")
  wrap_gg=(valgrind --tool=callgrind "--callgrind-out-file=$work/cg.guestgate")
fi

"${pin_load[@]}" "$bin/guestgate-sample-app" --listen 127.0.0.1:3900 > "$work/app.log" 2>&1 & pids+=($!)
"${wrap_bare[@]}" "$bin/examples/passthrough" --listen 127.0.0.1:3901 --upstream 127.0.0.1:3900 --threads 1 \
  > "$work/pt.log" 2>&1 & bare_pid=$!; pids+=($!)

# The shipped config, run from a copy so its relative paths land in the work dir.
mkdir -p "$work/config"
cp config/guestgate.toml "$work/config/guestgate.toml"
key=load-admin-key
cat >> "$work/config/guestgate.toml" <<CFG

[[admin.keys]]
name = "load"
role = "admin"
sha256 = "$(printf %s "$key" | sha256sum | cut -d' ' -f1)"
CFG
export GUESTGATE_LISTEN__ADDRESS=127.0.0.1:3902 GUESTGATE_LISTEN__THREADS=1 \
  GUESTGATE_ADMIN__ADDRESS=127.0.0.1:3903 GUESTGATE_UPSTREAM__ADDRESS=127.0.0.1:3900 \
  GUESTGATE_GUEST__PUBLIC_URL=http://127.0.0.1:3902 GUESTGATE_GUEST__VERIFY_PER_IP_PER_MINUTE=1000000 \
  GUESTGATE_POLICIES__DIR="$PWD/policies" GUESTGATE_GUEST__MAX_SHARE_LIFETIME=90d
"${wrap_gg[@]}" "$bin/guestgate" serve --config "$work/config/guestgate.toml" 2> "$work/gg.log" & gg_pid=$!; pids+=($!)
for _ in $(seq 1 600); do curl -fsS http://127.0.0.1:3903/readyz >/dev/null 2>&1 && break; sleep 0.1; done

nginx_pid=""
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ -x "$nginx_bin" ] && [ $mode = cpu ]; then
  mkdir -p "$work/nginx"
  # as root, the worker keeps root's id so it can use the private work directory
  user_line=""; [ "$(id -u)" -eq 0 ] && user_line="user root;"
  cat > "$work/nginx/nginx.conf" <<NGX
$user_line
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream app { server 127.0.0.1:3900; keepalive 64; }
  server {
    listen 127.0.0.1:3904;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
  "${pin_proxy[@]}" "$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" & pids+=($!)
  sleep 0.5
  nginx_pid=$(pgrep -P "$(cat "$work/nginx/nginx.pid")" | head -n 1 || true)
fi

# A real share through the real flow: admin API, code from the outbox, verification.
share() {  # share EMAIL CASE VERSION -> prints the session token
  local link code
  link=$(curl -fsS -H "Authorization: Bearer $key" \
    -d "{\"email\":\"$1\",\"case\":\"$2\",\"version\":\"$3\",\"expires_in\":2592000}" \
    http://127.0.0.1:3903/admin/v1/shares | sed -n 's/.*"link":"\([^"]*\)".*/\1/p')
  code=$(grep -l "$1" "$work"/var/outbox/*.eml | xargs cat | tr -d '\r' | sed -n 's/.*this code: \([0-9]\{6\}\).*/\1/p' | tail -n 1)
  curl -fsS -o /dev/null -D - -H 'Origin: http://127.0.0.1:3902' -d "code=$code" "$link/verify" \
    | sed -n 's/^[Ss]et-[Cc]ookie: guestgate_session=\([^;]*\);.*/\1/p'
}
token=$(share load@example.test 42 3)
[ -n "$token" ] || { echo "could not verify the load share"; tail "$work/gg.log"; exit 1; }
allowed=/api/cases/42/versions/3/documents/1
app_cookie="Cookie: app_session=$token"
guest_cookie="Cookie: guestgate_session=$token"
denied=/api/cases/7/versions/2/documents/1
check() { # check EXPECTED-STATUS URL [curl args]
  local want=$1 url=$2; shift 2
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")
  [ "$got" = "$want" ] || { echo "load: $url answered $got, not $want"; exit 1; }
}
check 200 "http://127.0.0.1:3901$allowed"
check 200 "http://127.0.0.1:3902$allowed" -H "$app_cookie"
check 200 "http://127.0.0.1:3902$allowed" -H "Cookie: guestgate_session=$token"
check 403 "http://127.0.0.1:3902$denied" -H "Cookie: guestgate_session=$token"
[ -z "$nginx_pid" ] || check 200 "http://127.0.0.1:3904$allowed"

if [ $mode = instructions ]; then
  command -v callgrind_control >/dev/null || { echo "load: valgrind is not installed"; exit 1; }
  drive() { # drive PORT PATH HEADER N: N requests over one keep-alive connection
    python3 - "$@" <<'PY'
import http.client, sys
port, path, header, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
name, value = header.split(": ", 1)
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers={name: value}); r = c.getresponse(); r.read()
    assert r.status in (200, 403), r.status
PY
  }
  # inclusive instructions of one function in a callgrind dump (0 when absent)
  inclusive() { callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk -v f="$2" '!found && index($0, f) {gsub(",", "", $1); n = $1; found = 1} END {print n + 0}'; }
  echo "$(date -u +%Y-%m-%d) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "callgrind, $requests requests per variant over one keep-alive connection"
  echo
  printf '| %-6s | %-26s | %-14s | %-22s |\n' variant "instructions / request" "bare / variant" "of which audit writer"
  printf '|--------|----------------------------|----------------|------------------------|\n'
  declare -A port_of=([bare]=3901 [pass]=3902 [allow]=3902 [deny]=3902)
  declare -A path_of=([bare]=$allowed [pass]=$allowed [allow]=$allowed [deny]=$denied)
  declare -A hdr_of=([bare]=$app_cookie [pass]=$app_cookie [allow]=$guest_cookie
                     [deny]=$guest_cookie)
  bare_ir=""
  for v in bare pass allow deny; do
    pid=$gg_pid; [ $v = bare ] && pid=$bare_pid
    drive "${port_of[$v]}" "${path_of[$v]}" "${hdr_of[$v]}" 200
    callgrind_control -z "$pid" >/dev/null 2>&1
    drive "${port_of[$v]}" "${path_of[$v]}" "${hdr_of[$v]}" "$requests"
    callgrind_control -d "$v" "$pid" >/dev/null 2>&1
    sleep 0.5
    dump=$(ls -t "$work"/cg.* | grep -v '\.done$' | head -n 1)
    total=$(inclusive "$dump" "PROGRAM TOTALS")
    writer=$(inclusive "$dump" "guestgate::audit::Writer::run")
    mv "$dump" "$dump.done"
    if [ -n "${LOAD_KEEP_DUMPS:-}" ]; then mkdir -p "$LOAD_KEEP_DUMPS"; cp "$dump.done" "$LOAD_KEEP_DUMPS/$v.callgrind"; fi
    per=$((total / requests)); [ -n "$bare_ir" ] || bare_ir=$per
    printf '| %-6s | %26d | %13.2fx | %22d |\n' "$v" "$per" "$(echo "$bare_ir / $per" | bc -l)" "$((writer / requests))"
  done
  exit 0
fi

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
sys_ticks() { awk '{ sub(/^.*\) /, ""); print $13 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

declare -A pid_of url_of hdr_of
pid_of=([bare]=$bare_pid [pass]=$gg_pid [allow]=$gg_pid [deny]=$gg_pid)
url_of=([bare]="http://127.0.0.1:3901$allowed" [pass]="http://127.0.0.1:3902$allowed"
        [allow]="http://127.0.0.1:3902$allowed" [deny]="http://127.0.0.1:3902$denied")
hdr_of=([bare]=$app_cookie [pass]=$app_cookie [allow]=$guest_cookie [deny]=$guest_cookie)
variants=(bare pass allow deny)
if [ -n "$nginx_pid" ]; then
  variants+=(nginx); pid_of[nginx]=$nginx_pid; url_of[nginx]="http://127.0.0.1:3904$allowed"; hdr_of[nginx]=$app_cookie
fi

# steal time of CPU 0 (the proxy's), in ticks: on a VM, time the host gave to others
steal_ticks() { awk '/^cpu0 / {print $9}' /proc/stat; }
# guestgate's audit writer thread, whose CPU is shown apart (part of guestgate's, in
# nanoseconds from schedstat: its share of a request is too small for clock ticks)
writer_tid=""
for t in /proc/"$gg_pid"/task/*; do
  [ "$(cat "$t/comm" 2>/dev/null)" = guestgate-audit ] && writer_tid=${t##*/}
done
writer_ns() { [ -n "$writer_tid" ] && awk '{print $1}' "/proc/$gg_pid/task/$writer_tid/schedstat" || echo 0; }
run() { # run VARIANT -> prints "µs-per-request requests steal-%-of-cpu0 writer-µs-per-request kernel-µs-per-request"
  local v=$1 before after out n s0 s1 w0 w1 k0 k1
  before=$(cpu_ticks "${pid_of[$v]}"); s0=$(steal_ticks); w0=$(writer_ns); k0=$(sys_ticks "${pid_of[$v]}")
  out=$("${pin_load[@]}" wrk -t1 -c"$conns" -d"${dur}s" -H "${hdr_of[$v]}" "${url_of[$v]}")
  after=$(cpu_ticks "${pid_of[$v]}"); s1=$(steal_ticks); w1=$(writer_ns); k1=$(sys_ticks "${pid_of[$v]}")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  [ "${pid_of[$v]}" = "$gg_pid" ] || w1=$w0
  echo "$(echo "($after - $before) * 1000000 / $ticks / $n" | bc -l) $n $(( (s1 - s0) * 100 / (ticks * dur) )) $(echo "($w1 - $w0) / 1000 / $n" | bc -l) $(echo "($k1 - $k0) * 1000000 / $ticks / $n" | bc -l)"
}

# warm every variant once (connections, caches, page faults) before measuring
for v in "${variants[@]}"; do dur=1 run "$v" >/dev/null; done

echo "$(date -u +%Y-%m-%d) $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "wrk -t1 -c$conns -d${dur}s per run, $rounds interleaved rounds; proxy pinned: ${pin_proxy[*]:-no}"
declare -A samples ratios writer kernel
steals=""
for r in $(seq 1 "$rounds"); do
  n=${#variants[@]}; line="round $r:"
  declare -A this=()
  for i in $(seq 0 $((n - 1))); do
    v=${variants[$(( (i + r) % n ))]}
    read -r us reqs steal wus kus < <(run "$v")
    samples[$v]+="$us "; this[$v]=$us; steals+="$steal "; writer[$v]+="$wus "; kernel[$v]+="$kus "
    line+=$(printf ' %s %.1f µs (%s req, steal %s%%)' "$v" "$us" "$reqs" "$steal")
  done
  # the ratio within the round: drift on a shared machine moves every variant of a
  # round alike, so the per-round ratio is steadier than a ratio of medians
  for v in "${variants[@]}"; do ratios[$v]+="$(echo "${this[bare]} / ${this[$v]}" | bc -l) "; done
  echo "$line"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
printf '| %-6s | %-24s | %-22s | %-19s | %-26s |\n' variant "µs CPU / request (median)" "bare / variant (median of rounds)" "of which kernel (µs)" "of which audit writer (µs)"
printf '|--------|--------------------------|------------------------|---------------------|----------------------------|\n'
for v in "${variants[@]}"; do
  med=$(echo "${samples[$v]}" | median)
  printf '| %-6s | %24.1f | %21.2fx | %19.1f | %26.2f |\n' "$v" "$med" "$(echo "${ratios[$v]}" | median)" \
    "$(echo "${kernel[$v]}" | median)" "$(echo "${writer[$v]}" | median)"
done
steal_med=$(echo "$steals" | median)
echo "steal time on the proxy's CPU: median $steal_med% of a run"
if [ "$(echo "$steal_med > 5" | bc -l)" = 1 ]; then
  echo "note: the host took more than 5% of the proxy's CPU: rounds drift, and a few percent"
  echo "      between variants is within noise here; ./scripts/load.sh --instructions is steadier"
fi

# Memory with many sessions: a share and a verified session each, then one request each.
echo
echo "memory: RSS before sessions $(rss_kib "$gg_pid") KiB"
python3 - "$work" "$key" "$sessions" <<'PY' > "$work/tokens"
import glob, http.client, json, os, re, sys, urllib.parse
work, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = http.client.HTTPConnection("127.0.0.1", 3903)
guest = http.client.HTTPConnection("127.0.0.1", 3902)
outbox = os.path.join(work, "var", "outbox")
seen = set(os.listdir(outbox))
for i in range(n):
    email = f"g{i}@load.example"
    admin.request("POST", "/admin/v1/shares", json.dumps(
        {"email": email, "case": "42", "version": "3", "expires_in": 2592000}),
        {"Authorization": f"Bearer {key}"})
    r = admin.getresponse(); body = json.loads(r.read())
    path = urllib.parse.urlsplit(body["link"]).path
    new = [f for f in os.listdir(outbox) if f not in seen]
    seen.update(new)
    text = "".join(open(os.path.join(outbox, f)).read() for f in new)
    code = re.search(r"this code: (\d{6})", text).group(1)
    guest.request("POST", path + "/verify", "code=" + code,
                  {"Origin": "http://127.0.0.1:3902",
                   "Content-Type": "application/x-www-form-urlencoded"})
    r = guest.getresponse(); r.read()
    cookie = r.getheader("Set-Cookie")
    print(re.match(r"guestgate_session=([^;]+)", cookie).group(1))
PY
echo "memory: $(wc -l < "$work/tokens") sessions verified, RSS $(rss_kib "$gg_pid") KiB"
python3 - "$work/tokens" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", 3902)
for t in open(sys.argv[1]).read().split():
    c.request("GET", "/api/cases/42/versions/3/documents/1", headers={"Cookie": "guestgate_session=" + t})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
echo "memory: every session made a request (token cache full), RSS $(rss_kib "$gg_pid") KiB"
