#!/usr/bin/env bash
# The demo: deploy example/site to a local emulator, change one file, deploy again.
set -euo pipefail
bin=$1 endpoint=$2 py=$3
here=$(cd "$(dirname "$0")/.." && pwd)
scripts/emulator.sh start "$endpoint" "$py"

export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=$endpoint AWS_EC2_METADATA_DISABLED=true
"$(dirname "$py")/aws" s3 mb s3://demo-site >/dev/null 2>&1 || true

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
cp -r "$here/example/site/." "$site"

echo; echo "── 1. First deploy: every file is new"
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true "$bin"
echo; echo "── 2. Redeploy of a fresh copy (every mtime new): nothing is uploaded"
find "$site" -exec touch {} +
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true "$bin"
echo; echo "── 3. One page edited, one removed: one upload, one delete"
echo "<!-- edited -->" >>"$site/blog/hello-world/index.html"
rm "$site/404.html"
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true "$bin"
echo
echo "The emulator keeps running on $endpoint (bucket demo-site) so you can try the"
echo "README's docker run line against it; 'make stop' ends it."
