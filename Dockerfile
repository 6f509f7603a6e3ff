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

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p keyward \
    && install -D -m 0755 target/release/keyward /out/keyward \
    && mkdir /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
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
