#!/usr/bin/env bash
# The demo: deploy example/site to a local emulator, change one file, deploy again.
set -euo pipefail
bin=$1 endpoint=$2 py=$3
here=$(cd "$(dirname "$0")/.." && pwd)
scripts/emulator.sh start "$endpoint" "$py"

export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=$endpoint AWS_EC2_METADATA_DISABLED=true
aws="$(dirname "$py")/aws"
"$aws" s3 mb s3://demo-site >/dev/null 2>&1 || true
"$aws" s3 rm --recursive --quiet s3://demo-site # each demo starts from an empty bucket
distribution=$("$aws" cloudfront list-distributions --query 'DistributionList.Items[0].Id' --output text 2>/dev/null || true)
if [[ -z $distribution || $distribution == None ]]; then
    distribution=$("$aws" cloudfront create-distribution --origin-domain-name demo-site.s3.amazonaws.com \
        --query Distribution.Id --output text)
fi

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
cp -r "$here/example/site/." "$site"

echo; echo "── 1. First deploy: every file is new"
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true "$bin"
echo; echo "── 2. Redeploy of a fresh copy (every mtime new): nothing is uploaded"
find "$site" -exec touch {} +
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true "$bin"
echo; echo "── 3. One page edited, one removed: one upload, one delete, and a CloudFront"
echo "      invalidation of exactly those paths"
echo "<!-- edited -->" >>"$site/blog/hello-world/index.html"
rm "$site/404.html"
S3_BUCKET=demo-site LOCAL_PATH="$site" DELETE_FLAG=true DISTRIBUTION_ID="$distribution" WAIT=true DEBUG=true "$bin" \
    | grep -v "DEBUG: skip"
echo
echo "The emulator keeps running on $endpoint (bucket demo-site) so you can try the"
echo "README's docker run line against it; 'make stop' ends it."
