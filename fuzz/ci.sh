#!/usr/bin/env bash
# Builds the fuzz targets and runs each one briefly from the committed seeds (fuzz/seeds/);
# fails if any input makes a target panic, overflow its stack, hang or run out of memory.
#
#   fuzz/ci.sh                      every target for $FUZZ_SECONDS (20) seconds
#   fuzz/ci.sh jq                   one target
#   FUZZ_SECONDS=600 fuzz/ci.sh jq  a longer run
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them. Builds go to $FUZZ_TARGET_DIR (outside the repository, and apart from the main build,
# whose flags differ); the growing corpus goes to $FUZZ_CORPUS (a temporary directory unless
# set). A crashing input is saved under fuzz/artifacts/<target>/ (ignored by git); replay it
# with `cargo fuzz run <target> <file>` in fuzz/ with the same environment.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/orgata-fuzz-target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

corpus=${FUZZ_CORPUS:-}
if [ -z "$corpus" ]; then
    corpus=$(mktemp -d)
    trap 'rm -rf "$corpus"' EXIT
fi

cargo fuzz build --sanitizer "$sanitizer"
for target in "${targets[@]}"; do
    echo "--- fuzzing $target for ${seconds}s"
    mkdir -p "$corpus/$target"
    # -timeout: one input may take at most 10 s; -rss_limit_mb / -malloc_limit_mb: memory.
    cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -dict="dict/$target.dict" -print_final_stats=1
done
