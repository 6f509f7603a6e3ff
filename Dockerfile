# keyward in a container: a release build, then a minimal glibc runtime (distroless
# cc: glibc, libgcc, CA certificates; no shell, no package manager). It runs as a
# non-root user and keeps SQLite's file in the /data volume; for several instances,
# set KEYWARD_DATABASE_URL to PostgreSQL (docs/DEPLOYMENT.md).
#
#   docker build -t keyward .
#   docker run -p 8080:8080 -v keyward-data:/data keyward
#
# Production: pass KEYWARD_PEPPER, KEYWARD_JWT_SECRET (or a JWKS URL) and
# KEYWARD_ADMIN_TOKEN from the platform's secret store; without them keyward runs its
# local trial and keeps generated secrets beside the database in /data.
#
# Both base images are pinned by digest: the tag before the @ is for readers, the digest
# is what is pulled, so a rebuild uses the bytes that were reviewed and a tag moved
# upstream changes nothing until the pin here is changed. Each pin is a multi-arch index
# digest (the one a tag resolves to), not one platform's manifest. Found 2026-12-07,
# without registry access, in public sources:
#   rust:1.98.0-bookworm: docker-library/repo-info, repos/rust/remote/1.98.0-bookworm.md
#     (an OCI image index for amd64, arm/v7, arm64, 386, ppc64le; built 2026-08-25).
#   gcr.io/distroless/cc-debian12:nonroot: the runtime base of public amd64 and arm64
#     builds (e.g. StephanMeijer/meneerhenk's Dockerfile, early 2026).
# Refresh both before a release and after each Debian security update to glibc, libgcc,
# OpenSSL or ca-certificates: resolve each tag's current index digest and replace it.
#   docker buildx imagetools inspect rust:1.98.0-bookworm    (its "Digest:" line)
#   crane digest gcr.io/distroless/cc-debian12:nonroot
# The build needs Rust 1.88 or later (rust-version in Cargo.toml); keep the build image
# on Debian 12 (bookworm) so the binary's glibc matches the runtime's.

FROM rust:1.98.0-bookworm@sha256:82150a52ec202c1b14d7817e14516c392bb7f5cfebd88f1ed531cb37ebd39922 AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p keyward \
    && install -D -m 0755 target/release/keyward /out/keyward \
    && mkdir /out/data

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="keyward" \
      org.opencontainers.image.description="Self-hosted API key service" \
      org.opencontainers.image.source="https://github.com/keyward/keyward" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/keyward /usr/local/bin/keyward
# The volume's mount point, owned by the runtime user so SQLite can write there.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot
WORKDIR /data
VOLUME /data
ENV KEYWARD_BIND=0.0.0.0:8080
ENV KEYWARD_DATABASE_URL=sqlite:///data/keyward.db
ENV KEYWARD_LOG_FORMAT=json
EXPOSE 8080
# No curl in the image: keyward asks its own /readyz (on loopback for a wildcard bind).
HEALTHCHECK --interval=10s --timeout=6s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/keyward", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/keyward"]
CMD ["serve"]
