#!/usr/bin/env bash
# Runs the service end to end against a local in-memory Azurite.
set -euo pipefail
bin=${1:-bin/nfs-watcher-uploader}
root=${RUN_DIR:-$PWD/.run}
port=${AZURITE_PORT:-10000}
mkdir -p "$root/nfs/incoming" "$root/staging"

node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
  --silent --disableTelemetry --skipApiVersionCheck &
azurite=$!
trap 'kill $azurite 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export APP_AZURE_AUTH=${APP_AZURE_AUTH:-connection-string}
export APP_AZURE_CONNECTION_STRING=${APP_AZURE_CONNECTION_STRING:-"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"}
export APP_AZURE_CONTAINER=${APP_AZURE_CONTAINER:-uploads}
export APP_NFS_INCOMING_DIR=${APP_NFS_INCOMING_DIR:-$root/nfs/incoming}
export APP_NFS_PROCESSING_ROOT=${APP_NFS_PROCESSING_ROOT:-$root/nfs/.processing}
export APP_LOCAL_STAGING_ROOT=${APP_LOCAL_STAGING_ROOT:-$root/staging}
export APP_HTTP_ADDR=${APP_HTTP_ADDR:-127.0.0.1:8000}
echo "Azurite on 127.0.0.1:$port; service on $APP_HTTP_ADDR; drop files into $APP_NFS_INCOMING_DIR/<session>/" >&2
"$bin"
