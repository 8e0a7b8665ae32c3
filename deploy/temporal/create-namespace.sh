#!/bin/sh
# One-shot namespace registration for deploy/docker-compose.yml (service temporal-namespace,
# image temporalio/admin-tools): waits for the frontend, then creates $NAMESPACE unless it exists.
set -eu

NAMESPACE="${NAMESPACE:-hvlab}"
RETENTION="${NAMESPACE_RETENTION:-168h}"
: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"

tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
    tries=$((tries + 1))
    [ "$tries" -ge 60 ] && { echo "Temporal did not become healthy" >&2; exit 1; }
    sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" \
        > /dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
        --retention "$RETENTION" --description "hvlab labs" -n "$NAMESPACE"
    echo "namespace $NAMESPACE created (retention $RETENTION)"
fi
