#!/usr/bin/env bash
# Builds the image offline: the Dockerfile's runtime stage, fed by a local
# payload image holding the binary that `make build` compiled.
#   image.sh BINARY TAG VERSION
set -euo pipefail
bin=$1 tag=$2 version=$3
# BuildKit skips the compile stage (and its pull) when PAYLOAD names an image.
# Docker's current CLI needs the buildx plugin for BuildKit; older CLIs (as
# Debian's 20.10) have it built in.
if docker buildx version >/dev/null 2>&1; then
    docker=(docker)
elif [[ -x /usr/bin/docker ]] && /usr/bin/docker version >/dev/null 2>&1; then
    docker=(env DOCKER_BUILDKIT=1 /usr/bin/docker)
else
    docker=(env DOCKER_BUILDKIT=1 docker)
fi
if [[ ! -f /etc/ssl/certs/ca-certificates.crt ]]; then
    apt-get install -y -qq ca-certificates >/dev/null
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
scripts/image-root.sh "$bin" "$context/out"
printf 'FROM scratch\nCOPY out/ /out/\n' | "${docker[@]}" build -q -t s3-cloudfront-deploy-payload:local -f - "$context" >/dev/null
"${docker[@]}" build -q --build-arg PAYLOAD=s3-cloudfront-deploy-payload:local --build-arg VERSION="$version" \
    --target runtime -t "$tag" . >/dev/null
echo "INFO: built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
