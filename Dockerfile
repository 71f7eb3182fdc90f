# Production image: `leasehold api` by default; fly.toml runs `worker` and `migrate` from it too.
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY scripts ./scripts
COPY sql ./sql
COPY tsconfig.json ./
USER node
EXPOSE 8080
ENTRYPOINT ["node", "scripts/leasehold.mjs"]
CMD ["api"]
