#!/usr/bin/env bash
# Smoke-test a built image against a real RabbitMQ and PostgreSQL, the way the deployment
# runs it: read-only root filesystem, non-root, one container per role.
#   deploy/smoke-test.sh [IMAGE]      (default webhook-router:0.1.0)
# Needs docker, a RabbitMQ (management plugin on :15672) and a PostgreSQL on this host
# (trust auth as user postgres), curl and python3. Makes a vhost and a database of its
# own and removes them, with its containers, on exit.
set -euo pipefail
image=${1:-webhook-router:0.1.0}
name=wr_smoke_$$
amqp_url="amqp://guest:guest@127.0.0.1:5672/$name"
database_url="postgresql+psycopg://postgres@127.0.0.1:5432/$name"
key=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
api_port=18080 metrics_port=19100 receiver_port=18090
containers=()

cleanup() {
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  [[ -n ${receiver_pid:-} ]] && kill "$receiver_pid" 2>/dev/null || true
  curl -fsS -u guest:guest -X DELETE "http://127.0.0.1:15672/api/vhosts/$name" >/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
}
trap cleanup EXIT

run() {  # run ROLE ARGS...: a container of the image, as deployed
  local role=$1; shift
  docker run --network host --read-only --tmpfs /tmp --cap-drop ALL \
    --security-opt no-new-privileges \
    -e ROUTER_AMQP_URL="$amqp_url" -e ROUTER_DATABASE_URL="$database_url" \
    -e ROUTER_ENCRYPTION_KEYS="$key" -e ROUTER_ALLOW_PRIVATE_TARGETS=true \
    -e ROUTER_METRICS_PORT="$metrics_port" --name "${name}_$role" "$@"
}

wait_ok() {  # wait_ok URL: until it answers 2xx, at most 60 s
  for _ in $(seq 60); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "smoke: $1 never answered 2xx" >&2; return 1
}

curl -fsS -u guest:guest -X PUT "http://127.0.0.1:15672/api/vhosts/$name" >/dev/null
curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' \
  "http://127.0.0.1:15672/api/permissions/$name/guest" >/dev/null
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $name"

echo "smoke: image $image runs as uid $(docker run --rm --entrypoint id "$image" -u)"
run migrate --rm "$image" db upgrade
run sync --rm "$image" topology sync
containers+=("${name}_api" "${name}_worker")
run api -d "$image" api --host 127.0.0.1 --port "$api_port" >/dev/null
run worker -d "$image" worker >/dev/null
wait_ok "http://127.0.0.1:$api_port/readyz"
wait_ok "http://127.0.0.1:$metrics_port/readyz"
echo "smoke: api /readyz $(curl -fsS "http://127.0.0.1:$api_port/readyz")"
echo "smoke: worker /readyz $(curl -fsS "http://127.0.0.1:$metrics_port/readyz")"

# A receiver on the host, a webhook to it, an event from the CLI in the image: delivered?
python3 -m http.server "$receiver_port" --bind 127.0.0.1 >/dev/null 2>&1 &
receiver_pid=$!
admin_key=$(run keys --rm "$image" keys create --account acme --role admin | tail -n 1)
curl -fsS -H "authorization: Bearer $admin_key" -H 'content-type: application/json' \
  -d "{\"name\": \"smoke\", \"url\": \"http://127.0.0.1:$receiver_port/hook\", \"events\": [\"delivery.done\"]}" \
  "http://127.0.0.1:$api_port/v1/webhooks" >/dev/null
sleep 1
run publish --rm "$image" publish --type delivery.done --account acme --site paris >/dev/null
# http.server answers POST with 501: the attempt is logged as a failure, which is what
# this checks: the event went broker -> worker -> HTTP -> database.
for _ in $(seq 30); do
  logged=$(curl -fsS "http://127.0.0.1:$metrics_port/metrics" \
    | awk '/^webhook_router_deliveries_total/ {sum += $2} END {print sum + 0}')
  [[ $logged != 0 ]] && break
  sleep 1
done
echo "smoke: worker counted $logged delivery attempt(s)"
[[ $logged != 0 ]]
docker stop -t 40 "${name}_worker" >/dev/null
echo "smoke: worker stopped with exit code $(docker inspect -f '{{.State.ExitCode}}' "${name}_worker")"
echo "smoke: passed"
