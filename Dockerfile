# The pipe's image: a static binary and a CA bundle on `scratch`.
#
#   docker build .                      compiles from source in an official Rust image
#   make image                          offline: the same runtime stage, fed by a local
#                                       image holding the binary `make` compiled
ARG RUST_VERSION=1.95
# The stage or image whose /out/ becomes the runtime's root.
ARG PAYLOAD=compile

FROM rust:${RUST_VERSION}-bookworm AS compile
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && scripts/image-root.sh target/x86_64-unknown-linux-gnu/release/s3-cloudfront-deploy /out

FROM ${PAYLOAD} AS payload

FROM scratch AS runtime
ARG VERSION=0.7.1
LABEL org.opencontainers.image.title="s3-cloudfront-deploy" \
      org.opencontainers.image.description="Bitbucket Pipe: deploy a folder to Amazon S3 and invalidate CloudFront" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://bitbucket.org/s3-cloudfront-deploy/s3-cloudfront-deploy" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=payload /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/s3-cloudfront-deploy"]
