#!/usr/bin/env bash
# The whole test suite: format check, clippy with warnings denied, a build of every binary
# (the end-to-end tests start the real `tickroom` and `tickroom-bot`), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# The sharding tests start a real redis-server (Debian package).
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server for the sharding tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install it (Debian: apt-get install -y redis-server)" >&2
    exit 1
  fi
fi

cargo fmt --all -- --check
# Architecture invariant: the protocol crate's default build has no tokio (no IO).
if cargo tree -p tickroom-protocol -e normal --prefix none | grep -q '^tokio '; then
  echo "tickroom-protocol must not depend on tokio in its default build" >&2
  exit 1
fi
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins --examples

# Run every test; keep the output to print one closing total over all test binaries.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
