# syntax=docker/dockerfile:1
# dynamorph on Debian 12 (bookworm): a build stage with the toolchain, a slim runtime stage
# with only the shared libraries the binary links and ca-certificates. No registry is reachable
# from the project's machines, so this file is parsed and checked by
# tests/cli/k8s_manifest_test.py instead of built there.
#
#   docker build -t dynamorph:0.1.0 .
#   docker run --rm -e AWS_REGION=eu-west-1 -v "$PWD:/work" dynamorph:0.1.0 status
#
# Build arguments:
#   DYNAMORPH_MARCH  the -march of the build. Default: x86-64-v3 on amd64 (AVX2: simdjson's
#                    fast kernel is chosen at compile time) and armv8.2-a on arm64 (Graviton 2
#                    and later), never "native" (that would be the build machine's CPU). Set
#                    x86-64 for amd64 nodes without AVX2.
ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ARG DYNAMORPH_MARCH=""
ARG TARGETARCH
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# The build packages come from the project's own list (scripts/setup.sh without the test-only
# ones), so the image and the developers' machines build with the same libraries.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --build-only && rm -rf /var/lib/apt/lists/*
# Only what the binary is built from; tests, benchmarks and fuzz targets are switched off.
COPY CMakeLists.txt ./
COPY cmake cmake
COPY dynamo dynamo
COPY expr expr
COPY stages stages
COPY pipeline pipeline
COPY migrations migrations
COPY benchmark benchmark
COPY cli cli
# `cmake --install` also puts the man page (help2man, from setup.sh) and the docs in place.
COPY README.md ./
COPY docs docs
COPY configs configs
RUN set -eu; \
    march="${DYNAMORPH_MARCH}"; \
    if [ -z "$march" ]; then \
      case "${TARGETARCH:-amd64}" in \
        amd64) march=x86-64-v3 ;; \
        arm64) march=armv8.2-a ;; \
        *) march="" ;; \
      esac; \
    fi; \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDYNAMORPH_MARCH="$march" \
          -DDYNAMORPH_BUILD_TESTS=OFF -DDYNAMORPH_BUILD_BENCH=OFF; \
    cmake --build build; \
    DESTDIR=/out cmake --install build --prefix /usr/local --strip; \
    /out/usr/local/bin/dynamorph --version

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# One runtime package per library the binary links (readelf -d: NEEDED), checked against the
# built binary by tests/cli/k8s_manifest_test.py; libcpp-httplib0.11 serves --metrics.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libc6 libgcc-s1 libstdc++6 zlib1g \
      libcurl4 libssl3 libsimdjson14 libtbb12 libfmt9 libyaml-cpp0.7 libuuid1 \
      libmimalloc2.0 liblua5.4-0 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /work --no-create-home \
      --shell /usr/sbin/nologin dynamorph \
 && mkdir -p /work && chown dynamorph:dynamorph /work
COPY --from=build /out/usr/local/bin/dynamorph /usr/local/bin/dynamorph
# The guide that `dynamorph init` and `generate` point to (no man in a slim image).
COPY --from=build /out/usr/local/share/doc/dynamorph /usr/local/share/doc/dynamorph
# dynamorph.yaml and migrations/ are read from the working folder unless --config and
# --migrations say otherwise (configs/k8s/ mounts them from a ConfigMap at /etc/dynamorph).
WORKDIR /work
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["dynamorph"]
CMD ["--help"]
