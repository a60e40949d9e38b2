#!/usr/bin/env bash
# Regenerates the whole frontend contract: the server's own files (SDL, OpenAPI, MCP tools,
# package schema, README) and the TypeScript types generated from them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -- contract export --out frontend-contract
cd codegen
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s generate
