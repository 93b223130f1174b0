#!/usr/bin/env bash
# The demo with checkpoints in S3: a local moto_server stands in for S3. Trains 2 epochs into
# s3://<bucket>/runs, then resumes from the printed best checkpoint's s3:// URI up to 3 epochs.
# Dummy credentials live only in this script's environment; the server stops when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CONFIG=configs/demo.yaml

PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT="http://127.0.0.1:$PORT"
BUCKET="handgesture-demo"
export AWS_ACCESS_KEY_ID=demo-access-key AWS_SECRET_ACCESS_KEY=demo-secret-key AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true PREFECT_LOGGING_EXTRA_LOGGERS="${PREFECT_LOGGING_EXTRA_LOGGERS:-handgesture}"
SERVER_LOG=$(mktemp -t moto-server.XXXXXX.log)

"$BIN/moto_server" -H 127.0.0.1 -p "$PORT" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -f "$SERVER_LOG"
}
trap cleanup EXIT

for attempt in $(seq 150); do
    "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "$ENDPOINT/moto-api/" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "moto_server exited:" >&2; cat "$SERVER_LOG" >&2; exit 1; }
    [ "$attempt" -lt 150 ] || { echo "moto_server did not answer on $ENDPOINT" >&2; exit 1; }
    sleep 0.2
done
"$BIN/python" -c "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])" \
    "$ENDPOINT" "$BUCKET"
echo "== S3 (moto_server) at $ENDPOINT, bucket s3://$BUCKET"

echo "== training 2 epochs into s3://$BUCKET/runs"
FIRST=$(mktemp -t demo-s3-first.XXXXXX.log)
"$BIN/python" flows/train.py --config "$CONFIG" --storage "s3://$BUCKET/runs" \
    "storage.endpoint_url=$ENDPOINT" train_params.epochs=2 2>&1 | tee "$FIRST"
BEST=$(sed -n 's/^best checkpoint: *//p' "$FIRST" | tail -n 1)
rm -f "$FIRST"
case "$BEST" in
    s3://*) ;;
    *) echo "error: no s3:// best checkpoint in the output (got '$BEST')" >&2; exit 1 ;;
esac

echo "== resuming from $BEST up to 3 epochs"
SECOND=$(mktemp -t demo-s3-second.XXXXXX.log)
"$BIN/python" flows/train.py --config "$CONFIG" --storage "s3://$BUCKET/runs" --resume "$BEST" --epochs 3 \
    "storage.endpoint_url=$ENDPOINT" 2>&1 | tee "$SECOND"
RESUMED=$(sed -n 's/^best checkpoint: *//p' "$SECOND" | tail -n 1)
rm -f "$SECOND"

echo
echo "first run's best checkpoint:   $BEST"
echo "resumed run's best checkpoint: $RESUMED"
echo "objects in s3://$BUCKET:"
"$BIN/python" -c "
import boto3, sys
pages = boto3.client('s3', endpoint_url=sys.argv[1]).get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2])
for page in pages:
    for obj in page.get('Contents', []):
        print(f\"  {obj['Size']:>10}  {obj['Key']}\")
" "$ENDPOINT" "$BUCKET"
