#!/usr/bin/env bash
# The demo: the sample case app on 127.0.0.1:3000, guestgate in front of it on
# 127.0.0.1:8080 (admin on 127.0.0.1:9190), and a guest session for case 42 version 3.
# Prints the requests to try; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet --bins
bin=target/debug
mkdir -p var

"$bin/guestgate-sample-app" --listen 127.0.0.1:3000 > var/sample-app.log 2>&1 &
app=$!
"$bin/guestgate" serve --config config/guestgate.toml 2> var/guestgate.log &
gate=$!
trap 'kill $app $gate 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:9190/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS http://127.0.0.1:9190/readyz >/dev/null || { echo "guestgate did not become ready; see var/guestgate.log"; exit 1; }

token=$("$bin/guestgate" session mint --config config/guestgate.toml \
  --email expert@clinic.example --share demo-42:42:3:view-only --ttl 1h)
C="Cookie: guestgate_session=$token"

cat <<MSG

guestgate is running in front of the sample case app.
  proxy  http://127.0.0.1:8080      admin  http://127.0.0.1:9190/readyz
  audit  var/audit.log              logs   var/guestgate.log

A guest session for expert@clinic.example, sharing case 42 at version 3 (view-only):
  C='$C'

Allowed (reaches the app):
  curl -s -H "\$C" http://127.0.0.1:8080/cases/42/versions/3
  curl -s -H "\$C" http://127.0.0.1:8080/api/cases/42/versions/3/documents
  curl -s -H "\$C" http://127.0.0.1:8080/api/cases/42/versions/3/documents/1/content

Denied by policy (403, the app sees nothing):
  curl -s -H "\$C" http://127.0.0.1:8080/api/cases/43/versions/1/documents        # another case
  curl -s -H "\$C" http://127.0.0.1:8080/api/cases/42/versions/2/documents        # another version
  curl -s -H "\$C" -X DELETE http://127.0.0.1:8080/api/cases/42/versions/3/documents/1
  curl -s -H "\$C" http://127.0.0.1:8080/api/cases
  curl -s -H "\$C" -H 'Accept: text/html' http://127.0.0.1:8080/settings       # the HTML page

Refused as hostile (400):
  curl -s --path-as-is -H "\$C" 'http://127.0.0.1:8080/api/cases/42/versions/3/documents/../../../43/versions/1/documents'
  curl -s -H "\$C" 'http://127.0.0.1:8080/api/cases/42/versions/3/%2e%2e/documents'

Explain a decision without sending anything:
  $bin/guestgate policy explain GET /api/cases/43/versions/1/documents --case 42 --version 3

Press Ctrl-C to stop.
MSG
wait
