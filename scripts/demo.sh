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

export GUESTGATE_ADMIN_URL=http://127.0.0.1:9190 GUESTGATE_ADMIN_TOKEN=demo-admin-key-change-me
before=$(ls var/outbox 2>/dev/null | wc -l)
link=$("$bin/guestgate" share create --email expert@clinic.example --case 42 --version 3 \
  --created-by "Ada (case manager)" | sed -n 's/.*"link": "\(.*\)".*/\1/p')
for _ in $(seq 1 50); do [ "$(ls var/outbox | wc -l)" -gt "$before" ] && break; sleep 0.1; done
mail=$(ls -t var/outbox/*.eml | head -n 1)
code=$(tr -d '\r' < "$mail" | sed -n 's/.*this code: \([0-9]\{6\}\).*/\1/p' | head -n 1)

cat <<MSG

guestgate is running in front of the sample case app.
  proxy  http://127.0.0.1:8080      admin  http://127.0.0.1:9190/readyz
  audit  var/audit.log              logs   var/guestgate.log      mail  var/outbox/

Staff shared case 42, version 3 with expert@clinic.example:
  GUESTGATE_ADMIN_TOKEN=demo-admin-key-change-me $bin/guestgate share create --email expert@clinic.example --case 42 --version 3

The guest's email is $mail; it holds the link and the code:
  link  $link
  code  $code

In a browser: open the link, enter the code, and you land on the case. Or with curl:
  curl -s -c jar -b jar -H 'Origin: http://127.0.0.1:8080' -d code=$code $link/verify -o /dev/null -w '%{http_code} -> %{redirect_url}\\n'
  curl -s -b jar http://127.0.0.1:8080/api/cases/42/versions/3/documents            # allowed
  curl -s -b jar http://127.0.0.1:8080/api/cases/43/versions/1/documents            # another case: 403
  curl -s -b jar -X DELETE http://127.0.0.1:8080/api/cases/42/versions/3/documents/1  # a write: 403
  curl -s -b jar 'http://127.0.0.1:8080/api/cases/42/versions/3/%2e%2e/documents'    # hostile: 400

Staff views and revocation (the next guest request is denied):
  $bin/guestgate share list
  $bin/guestgate guests list
  $bin/guestgate share revoke <id>
  $bin/guestgate guests revoke expert@clinic.example

Explain a decision without sending anything:
  $bin/guestgate policy explain GET /api/cases/43/versions/1/documents --case 42 --version 3

Press Ctrl-C to stop.
MSG
wait
