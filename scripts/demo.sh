#!/usr/bin/env bash
# The demo: the sample case app on 127.0.0.1:3000, guestgate in front of it on
# 127.0.0.1:8080 (admin on 127.0.0.1:9190), and a share of case 42, version 3.
# Prints what to open in a browser and the lines to paste; Ctrl-C stops everything.
#   ./scripts/demo.sh                       mode = mixed (see below)
#   GUESTGATE_MODE=guest-only ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The same build as ./scripts/test.sh: building an example brings the dev-dependencies
# into the feature resolution, so nothing that the tests built is compiled again.
cargo build --quiet --bins --example passthrough
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

admin_url=http://127.0.0.1:9190
admin_token=demo-admin-key-change-me
export GUESTGATE_ADMIN_URL=$admin_url GUESTGATE_ADMIN_TOKEN=$admin_token
before=$(ls var/outbox 2>/dev/null | wc -l)
created=$("$bin/guestgate" share create --email expert@clinic.example --case 42 --version 3 \
  --created-by "Ada Okafor (case manager)" --contact ada@firm.example)
id=$(printf '%s\n' "$created" | sed -n 's/.*"id": "\(.*\)".*/\1/p')
link=$(printf '%s\n' "$created" | sed -n 's/.*"link": "\(.*\)".*/\1/p')
for _ in $(seq 1 50); do [ "$(ls var/outbox | wc -l)" -gt "$before" ] && break; sleep 0.1; done
mail=$(ls -t var/outbox/*.eml | head -n 1)
code=$(tr -d '\r' < "$mail" | sed -e ':a' -e '/=$/N; s/=\n//; ta' | sed -n 's/.*this code: \([0-9]\{6\}\).*/\1/p' | head -n 1)
mode=${GUESTGATE_MODE:-mixed}

cat <<MSG

guestgate is running in front of the sample case app (mode = $mode).
  proxy  http://127.0.0.1:8080      admin  $admin_url/readyz
  audit  var/audit.log              logs   var/guestgate.log      mail  var/outbox/

Ada shared case 42, version 3 with expert@clinic.example: share $id
The guest's email is $mail; it holds the link and the code:
  link  $link
  code  $code

In a browser: open the link, enter the code, and you land on the case. Try a wrong code
first, "Send me a new code" (the new one is the newest file in var/outbox/), another
case (http://127.0.0.1:8080/cases/43/versions/1), "My shares" and "Sign out".

In another shell, paste these to act as staff:
  export GUESTGATE_ADMIN_URL=$admin_url GUESTGATE_ADMIN_TOKEN=$admin_token
  $bin/guestgate share list
  $bin/guestgate guests list
  $bin/guestgate share revoke $id          # the guest's next request is refused
  $bin/guestgate share create --email expert@clinic.example --case 43 --version 1 --created-by "Ada Okafor"
  $bin/guestgate policy explain GET /api/cases/43/versions/1/documents --case 42 --version 3

Or as the guest with curl:
  curl -s -c jar -b jar -H 'Origin: http://127.0.0.1:8080' -d code=$code $link/verify -o /dev/null -w '%{http_code} -> %{redirect_url}\\n'
  curl -s -b jar http://127.0.0.1:8080/api/cases/42/versions/3/documents            # allowed
  curl -s -b jar http://127.0.0.1:8080/api/cases/43/versions/1/documents            # another case: 403
  curl -s -b jar -X DELETE http://127.0.0.1:8080/api/cases/42/versions/3/documents/1  # a write: 403
  curl -s -b jar 'http://127.0.0.1:8080/api/cases/42/versions/3/%2e%2e/documents'    # hostile: 400

MSG
if [ "$mode" = mixed ]; then
cat <<'MSG'
About mode = mixed: requests WITHOUT a guest cookie reach the sample app as its own
staff. The sample app has no login of its own, so here that is anyone: open
http://127.0.0.1:8080/settings in a private window. Mixed mode is for apps that
authenticate their own users; a host only for guests runs
  GUESTGATE_MODE=guest-only ./scripts/demo.sh
where anything without a guest session is refused.

MSG
fi
echo "Press Ctrl-C to stop."
wait
