#!/usr/bin/env bash
# Starts or stops the local S3/CloudFront/STS emulator (moto) used by the demo.
#   emulator.sh start ENDPOINT PYTHON   |   emulator.sh stop ENDPOINT
set -euo pipefail
action=$1 endpoint=$2
port=${endpoint##*:}
state=.demo
mkdir -p "$state"
case "$action" in
start)
    if curl -fs "$endpoint/moto-api/" >/dev/null 2>&1; then
        echo "INFO: emulator already running on $endpoint"
        exit 0
    fi
    "$(dirname "$3")/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    for _ in $(seq 100); do
        curl -fs "$endpoint/moto-api/" >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    echo "✖ the emulator did not start on $endpoint: see $state/moto.log" >&2
    exit 1
    ;;
stop)
    if [[ -f $state/moto.pid ]]; then
        kill "$(cat "$state/moto.pid")" 2>/dev/null || true
        rm -f "$state/moto.pid"
        echo "INFO: emulator on $endpoint stopped"
    fi
    ;;
esac
