# syntax=docker/dockerfile:1
# glassbox recorder image: the daemon and CLI on Node 24 LTS (Debian bookworm),
# run as the unprivileged user glassbox (uid/gid 10001) under tini.
# Build:  docker build -t glassbox .
# Run:    docker run -d --name glassbox --network host \
#           --cap-add NET_ADMIN --cap-add SYS_NICE \
#           -v glassbox-state:/var/lib/glassbox -v /etc/glassbox:/etc/glassbox:ro glassbox
#
# Capabilities. The daemon itself holds none. The egress observer's netfilter
# work is done by the tools it runs (nft, `nft monitor`, `conntrack -E` under
# chrt), and Docker gives a non-root process no ambient capabilities, so only
# those tools carry file capabilities, runnable by group glassbox alone:
#   /usr/sbin/nft, /usr/sbin/conntrack  cap_net_admin+ep   (nftables table, conntrack events)
#   /usr/bin/chrt                       cap_sys_nice+ep    (conntrack under SCHED_FIFO, docs/egress.md)
# --cap-add NET_ADMIN / SYS_NICE put them in the container's bounding set; without
# NET_ADMIN the tools cannot start and the observer reports why (attestations say
# incomplete); without SYS_NICE conntrack runs with the normal scheduler.
# `--security-opt no-new-privileges` disables file capabilities: do not use it
# with this image, or the observer cannot run. --network host: the observer
# accounts the recorder's own network namespace.
#
# State: /var/lib/glassbox (a volume; a new named volume is created owned by
# glassbox; a bind-mounted host directory must be owned by 10001:10001).
# /run/glassbox: the local API socket and the conntrack spool (a tmpfs there
# must be mode 0750, owned by 10001:10001). /etc/glassbox/config.json: read-only.
# Provisioning runs in the same image as the same user; its default owner
# glassbox:glassbox is this account:
#   docker run --rm -v glassbox-state:/var/lib/glassbox glassbox provision init --device-id … --hardware …

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
# libcap2-bin only for setcap, removed in the same layer. The group and mode are
# set before setcap: a chown/chgrp clears a file's capabilities.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables conntrack iproute2 openssl ca-certificates tini libcap2-bin \
 && groupadd --system --gid 10001 glassbox \
 && useradd --system --uid 10001 --gid glassbox --no-create-home --home-dir /var/lib/glassbox --shell /usr/sbin/nologin glassbox \
 && chgrp glassbox /usr/sbin/nft /usr/sbin/conntrack /usr/bin/chrt \
 && chmod 0750 /usr/sbin/nft /usr/sbin/conntrack /usr/bin/chrt \
 && setcap cap_net_admin+ep /usr/sbin/nft \
 && setcap cap_net_admin+ep /usr/sbin/conntrack \
 && setcap cap_sys_nice+ep /usr/bin/chrt \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o glassbox -g glassbox -m 0750 /var/lib/glassbox /run/glassbox \
 && install -d -m 0755 /etc/glassbox
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
# Made above, owned by glassbox, before VOLUME: a new named volume starts as a copy of it.
VOLUME ["/var/lib/glassbox"]
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/glassbox/dist/cli/main.js"]
CMD ["daemon", "--config", "/etc/glassbox/config.json"]
