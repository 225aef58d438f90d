# syntax=docker/dockerfile:1
# glassbox recorder image: the daemon and CLI on Node 24 LTS (Debian bookworm).
# Build:  docker build -t glassbox .
# Run:    docker run --rm --cap-add NET_ADMIN --network host \
#           -v /var/lib/glassbox:/var/lib/glassbox -v /etc/glassbox:/etc/glassbox:ro glassbox daemon

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY firmware-manifests/schema ./firmware-manifests/schema
COPY scripts/gen-validators.mjs ./scripts/gen-validators.mjs
# The same build as `npm run build`: tsc, then the precompiled JSON Schema validators.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE} AS runtime
# nftables + conntrack: kernel egress accounting; iproute2: neighbour (MAC) lookup;
# openssl: lets a technician run the documented by-hand checks on the device.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables conntrack iproute2 openssl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
# The daemon's V8 options, as in device/systemd/glassbox.service (src/daemon/runtime.ts):
# 1 MiB young-generation semi-spaces, ~10 MiB less idle RSS (docs/daemon.md, Footprint).
ENV NODE_OPTIONS=--max-semi-space-size=1
WORKDIR /opt/glassbox
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/firmware-manifests/schema ./firmware-manifests/schema
RUN ln -s /opt/glassbox/dist/cli/main.js /usr/local/bin/glassbox && chmod 0755 dist/cli/main.js
# The daemon needs CAP_NET_ADMIN for its nftables table and conntrack events;
# everything else runs as root only because the recorder's state dir is root-owned.
VOLUME ["/var/lib/glassbox"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/glassbox/dist/cli/main.js"]
CMD ["daemon", "--config", "/etc/glassbox/config.json"]
