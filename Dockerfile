# Cascade: one image for both processes.
#   API (default):  docker run -p 3000:3000 -e REDIS_URL=redis://host:6379 cascade
#   worker:         docker run -e REDIS_URL=redis://host:6379 cascade node packages/worker/dist/main.js
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS build
# corepack is unreliable in some environments; a pinned global pnpm is simple and reproducible.
RUN npm install --global pnpm@12.4.2
WORKDIR /app
ENV CI=true
# `pnpm fetch` needs only the lockfile, so this layer survives source changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
# Build with dev dependencies, then reinstall from scratch with production ones only
# (`install --prod` over an existing tree leaves the dev packages in node_modules/.pnpm).
RUN pnpm install --offline --frozen-lockfile \
 && pnpm -r build \
 && rm -rf node_modules packages/*/node_modules \
 && pnpm install --offline --frozen-lockfile --prod \
 && chmod -R a+rX,go-w /app

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
# Owned by root, readable but not writable by the app user (chmod above: a build context may
# carry 0600 files): the running process cannot rewrite its own code.
COPY --from=build /app /app
USER node
EXPOSE 3000
CMD ["node", "packages/api/dist/main.js"]
