# Lantern embedded node. Node 20 on Debian bookworm: the pinned uWebSockets.js build needs glibc >= 2.27
# and the Node 20 ABI (see ../shared/DESIGN.md).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    LANTERN_HOST=0.0.0.0 \
    LANTERN_PORT=8080 \
    LANTERN_DATA_DIR=/data
COPY package.json package-lock.json ./
# Falls back when a registry mirror lacks optional platform packages (see .ci/run).
RUN npm ci --omit=dev --no-audit --no-fund || npm install --omit=dev --no-save --no-audit --no-fund
COPY protocol ./protocol
COPY engine ./engine
COPY storage ./storage
COPY gateway ./gateway
COPY bin ./bin
VOLUME /data
EXPOSE 8080
USER node
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.LANTERN_PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/lantern.mjs", "start"]
