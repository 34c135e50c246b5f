#!/usr/bin/env bash
# Opt-in check of the broker with a second Kafka client, kcat (Debian/Ubuntu: apt-get install kcat).
# Starts the broker on a temporary data directory, produces 100 records with each codec kcat offers, reads them
# back through a consumer group (which commits), restarts the broker, produces 10 more and checks that the group
# resumes at its committed offset. Exits non-zero on the first mismatch.
#   samples/KafkaBroker/kcat-demo.sh            (PORT=19092 by default)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PORT:-19092}"
bootstrap="127.0.0.1:${port}"
data="$(mktemp -d)"
broker_pid=""

command -v kcat >/dev/null || { echo "kcat not found: apt-get install kcat" >&2; exit 2; }
dotnet build "${here}/KafkaBroker.csproj" -c Release -v quiet -nologo >/dev/null
dll="${here}/bin/Release/net10.0/KafkaBroker.dll"

start_broker() {
    dotnet "${dll}" --data "${data}" --port "${port}" &
    broker_pid=$!
    for _ in $(seq 1 100); do
        kcat -b "${bootstrap}" -L -m 1 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the broker did not start" >&2
    exit 1
}

stop_broker() {
    # SIGTERM: the broker closes its connections and flushes and closes every log.
    kill -TERM "${broker_pid}"
    wait "${broker_pid}" || true
}

cleanup() {
    if [[ -n "${broker_pid}" ]] && kill -0 "${broker_pid}" 2>/dev/null; then stop_broker; fi
    rm -rf "${data}"
}
trap cleanup EXIT

expect_equal() { # name expected actual
    if [[ "$2" != "$3" ]]; then
        echo "FAIL ${1}: expected $(wc -l <<<"$2") lines, got $(wc -l <<<"$3")" >&2
        diff <(echo "$2") <(echo "$3") | head >&2
        exit 1
    fi
    echo "ok   ${1}: $(wc -l <<<"$3") records"
}

start_broker
for codec in none gzip snappy lz4 zstd; do
    expected="$(seq 1 100 | sed "s/^/${codec} record /")"
    kcat -b "${bootstrap}" -P -t "codec-${codec}" -z "${codec}" -X enable.idempotence=true <<<"${expected}"
    actual="$(kcat -b "${bootstrap}" -C -G "group-${codec}" -o beginning -e -q -f '%s\n' "codec-${codec}")"
    expect_equal "produce/consume ${codec}" "${expected}" "${actual}"
done

stop_broker
start_broker
expected="$(seq 101 110 | sed 's/^/none record /')"
kcat -b "${bootstrap}" -P -t codec-none <<<"${expected}"
actual="$(kcat -b "${bootstrap}" -C -G group-none -e -q -f '%s\n' codec-none)"
expect_equal "resume at the committed offset after a restart" "${expected}" "${actual}"
echo "PASS"
