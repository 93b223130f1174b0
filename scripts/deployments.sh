#!/usr/bin/env bash
# A local Prefect server, the GPU work pool, the deployments in prefect.yaml and a worker, one step each:
#
#   scripts/deployments.sh server     start `prefect server start` on 127.0.0.1:$PREFECT_PORT (foreground)
#   scripts/deployments.sh pool       create the work pool handgesture-gpu (type $HANDGESTURE_POOL_TYPE, default process)
#   scripts/deployments.sh deploy     `prefect deploy --name train --name scheduled-retrain --name evaluate --name sweep` (process pool)
#   scripts/deployments.sh worker     start a worker on the pool (foreground; one per GPU, see docs/deployments.md)
#   scripts/deployments.sh run [DEPLOYMENT] [--param k=v ...]   trigger a run (default: the train deployment);
#                                     OVERRIDES='["train_params.epochs=1"]' passes the overrides list
#   scripts/deployments.sh ui         print the UI's address (and open it where a browser opener exists)
#
# Run `server` and `worker` in their own terminals. Every command talks to the same API: PREFECT_API_URL
# defaults to http://127.0.0.1:$PREFECT_PORT/api. See docs/deployments.md.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BIN="${BIN:-$REPO/.venv/bin}"
PREFECT_PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:$PREFECT_PORT/api}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}" DO_NOT_TRACK="${DO_NOT_TRACK:-1}"
export PREFECT_LOGGING_EXTRA_LOGGERS="${PREFECT_LOGGING_EXTRA_LOGGERS:-handgesture}"
# prefect.yaml's pull step changes into this directory before a flow run loads its code.
export HANDGESTURE_REPO_DIR="${HANDGESTURE_REPO_DIR:-$REPO}"
POOL=handgesture-gpu  # the name prefect.yaml deploys to
POOL_TYPE="${HANDGESTURE_POOL_TYPE:-process}"
UI_URL="${PREFECT_API_URL%/api}"

case "${1:-}" in
    server)
        exec "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" ;;
    pool)
        # An existing pool is kept as it is (its base job template may have been edited).
        "$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 \
            || "$BIN/prefect" work-pool create "$POOL" --type "$POOL_TYPE" ;;
    deploy)
        "$BIN/prefect" --no-prompt deploy --name train --name scheduled-retrain --name evaluate --name sweep ;;
    worker)
        exec "$BIN/prefect" worker start --pool "$POOL" --type "$POOL_TYPE" ;;
    run)
        shift
        deployment="${1:-train-hand-gesture-classifier/train}"
        [ $# -gt 0 ] && shift
        # A JSON list survives make and the shell only as one quoted word: --param overrides='[...]'.
        exec "$BIN/prefect" deployment run "$deployment" ${OVERRIDES:+--param "overrides=$OVERRIDES"} "$@" ;;
    ui)
        echo "Prefect UI: $UI_URL"
        command -v xdg-open >/dev/null && xdg-open "$UI_URL" >/dev/null 2>&1 || true ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 2 ;;
esac
