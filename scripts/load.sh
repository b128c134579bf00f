#!/usr/bin/env bash
# Load run: wrk against guestgate (a guest session, an allowed request) and against a
# bare pingora pass-through, same pingora version, same upstream (the sample app),
# same run, alternating so drift hits both. Prints requests/s and the ratio.
#   ./scripts/load.sh [duration-seconds] [connections] [rounds]
# Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}; conns=${2:-32}; rounds=${3:-3}
./scripts/setup.sh
cargo build --quiet --release --bins --example passthrough
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/guestgate-sample-app" --listen 127.0.0.1:3900 > "$work/app.log" 2>&1 & pids+=($!)
"$bin/examples/passthrough" --listen 127.0.0.1:3901 --upstream 127.0.0.1:3900 --threads 1 > "$work/pt.log" 2>&1 & pids+=($!)
key=load-admin-key
cat > "$work/guestgate.toml" <<CFG
mode = "mixed"
[listen]
address = "127.0.0.1:3902"
threads = 1
[admin]
address = "127.0.0.1:3903"
[[admin.keys]]
name = "load"
role = "admin"
sha256 = "$(printf %s "$key" | sha256sum | cut -d' ' -f1)"
[guest]
public_url = "http://127.0.0.1:3902"
verify_per_ip_per_minute = 1000
[mail]
outbox = "outbox"
[upstream]
address = "127.0.0.1:3900"
[policies]
dir = "$PWD/policies"
[session]
key_file = "session.key"
secure_cookie = false
[audit]
path = "audit.log"
[log]
level = "warn"
CFG
"$bin/guestgate" serve --config "$work/guestgate.toml" 2> "$work/gg.log" & pids+=($!)
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:3903/readyz >/dev/null 2>&1 && break; sleep 0.1; done
# A real share through the real flow: admin API, code from the outbox, verification.
link=$(curl -fsS -H "Authorization: Bearer $key" -d '{"email":"load@example.test","case":"42","version":"3"}' \
  http://127.0.0.1:3903/admin/v1/shares | sed -n 's/.*"link":"\([^"]*\)".*/\1/p')
code=$(cat "$work"/outbox/*.eml | tr -d '\r' | sed -n 's/.*this code: \([0-9]\{6\}\).*/\1/p' | head -n 1)
token=$(curl -fsS -o /dev/null -D - -H 'Origin: http://127.0.0.1:3902' -d "code=$code" "$link/verify" \
  | sed -n 's/^[Ss]et-[Cc]ookie: guestgate_session=\([^;]*\);.*/\1/p')
[ -n "$token" ] || { echo "could not verify the load share"; exit 1; }
path=/api/cases/42/versions/3/documents/1
curl -fsS -o /dev/null -H "Cookie: guestgate_session=$token" "http://127.0.0.1:3902$path"
curl -fsS -o /dev/null "http://127.0.0.1:3901$path"

rps() { wrk -t1 -c"$conns" -d"${dur}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "wrk -t1 -c$conns -d${dur}s, $rounds rounds, GET $path (1 proxy thread each)"
gg_total=0; pt_total=0
for r in $(seq 1 "$rounds"); do
  pt=$(rps "http://127.0.0.1:3901$path")
  gg=$(rps -H "Cookie: guestgate_session=$token" "http://127.0.0.1:3902$path")
  echo "round $r: passthrough $pt req/s, guestgate $gg req/s"
  pt_total=$(echo "$pt_total + $pt" | bc -l); gg_total=$(echo "$gg_total + $gg" | bc -l)
done
denied=$(grep -c '"decision":"deny"' "$work/audit.log" || true)
allowed=$(grep -c '"decision":"allow"' "$work/audit.log" || true)
printf 'mean: passthrough %.0f req/s, guestgate %.0f req/s, ratio guestgate/passthrough = %.3f\n' \
  "$(echo "$pt_total / $rounds" | bc -l)" "$(echo "$gg_total / $rounds" | bc -l)" "$(echo "$gg_total / $pt_total" | bc -l)"
echo "audit lines: allow=$allowed deny=$denied (every guestgate request is audited)"
