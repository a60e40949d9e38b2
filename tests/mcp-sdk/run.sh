#!/usr/bin/env bash
# Orgata's MCP server driven by the official SDKs: the Python SDK (PyPI `mcp`) and the
# TypeScript SDK (npm `@modelcontextprotocol/sdk`), over Streamable HTTP and stdio, on every
# protocol revision each speaks. Builds nothing: pass the `orgata` binary.
#
#   tests/mcp-sdk/run.sh target/debug/orgata
#
# Installs the pinned SDKs (python/requirements.txt with hashes, typescript/package-lock.json)
# into ~/.cache and ./typescript/node_modules, starts `orgata serve` on 127.0.0.1:0 with a
# temporary SQLite database and the examples, runs both suites, and closes on
# `N passed, N failed`; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
orgata="$(realpath "${1:?usage: run.sh path/to/orgata}")"
[ -x "$orgata" ] || { echo "not an executable: $orgata"; exit 2; }

# The Python SDK, in a virtual environment keyed by the requirements' content.
requirements="$here/python/requirements.txt"
venv="$HOME/.cache/orgata-mcp-sdk-python-$(sha256sum "$requirements" | cut -c1-12)"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --require-hashes --no-deps -r "$requirements"
fi
# The TypeScript SDK, exactly as locked.
(cd "$here/typescript" && npm ci --no-audit --no-fund --loglevel=error)

workdir=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$workdir"
}
trap cleanup EXIT
"$orgata" serve --listen 127.0.0.1:0 --examples-dir "$root/examples" \
  --database-url "sqlite://$workdir/orgata.db?mode=rwc" --log-format json >"$workdir/server.log" 2>&1 &
server=$!
address=""
for _ in $(seq 100); do
  address=$(grep -o '"address":"[^"]*"' "$workdir/server.log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { cat "$workdir/server.log"; echo "the server did not start"; exit 1; }

arguments=(--url "http://$address/mcp" --orgata "$orgata" --examples "$root/examples")
status=0
"$venv/bin/python" "$here/python/suite.py" "${arguments[@]}" | tee "$workdir/python.out" || status=1
(cd "$here/typescript" && node suite.mjs "${arguments[@]}") | tee "$workdir/typescript.out" || status=1

passed=$(cat "$workdir/python.out" "$workdir/typescript.out" | grep -c '^PASS ' || true)
failed=$(cat "$workdir/python.out" "$workdir/typescript.out" | grep -c '^FAIL ' || true)
# An SDK × revision the SDK cannot speak is reported as skipped, never run.
skipped=$(cat "$workdir/python.out" "$workdir/typescript.out" | grep -c '^SKIP ' || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # A suite died before reporting its checks.
  failed=1
fi
if grep -q '"level":"ERROR"' "$workdir/server.log"; then
  echo "the server logged errors:"
  grep '"level":"ERROR"' "$workdir/server.log" | head -20
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
