#!/bin/sh
# Lays out the runtime image's root: image-root.sh BINARY DIR
# (used by the Dockerfile's compile stage and by `make image`).
set -eu
bin=$1 root=$2
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/s3-cloudfront-deploy"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
