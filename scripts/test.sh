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

# Installs Debian packages the tests need (the tests run on Debian; elsewhere, say what is missing).
apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing $* for the tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "$* missing: install it (Debian: apt-get install -y $*)" >&2
    return 1
  fi
}

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

# The real-loss tests (client-bot/tests/netns_loss.rs) make network namespaces (`ip netns`,
# iproute2) with an iptables DROP rule; they may only skip outside CI.
if ! command -v iptables >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  apt_install iptables iproute2
fi

cargo fmt --all -- --check
# Architecture invariant: the protocol crate's default build has no tokio (no IO).
if cargo tree -p tickroom-protocol -e normal --prefix none | grep -q '^tokio '; then
  echo "tickroom-protocol must not depend on tokio in its default build" >&2
  exit 1
fi
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins --examples

# The deployment files (deploy/): manifests and units parse, and every flag they use exists in
# the binary for its role; the checker's own self-test proves it catches planted mistakes.
python3 -c "import yaml" 2>/dev/null || apt_install python3-yaml
python3 deploy/check.py target/debug/tickroom
python3 deploy/check.py --self-test

# Run every test; keep the output to print one closing total over all test binaries.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')

# The TypeScript client (clients/ts): every golden vector, the session core with fake time, and
# end-to-end runs against the binaries built above; then the web page in a real browser
# (Debian's chromium, driven by playwright-core). The page the server embeds at /play
# (clients/ts/web-dist) must be exactly what the sources build.
ts_status=0
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm || ts_status=1
[ -x /usr/bin/chromium ] || apt_install chromium || ts_status=1
if [ "$ts_status" -eq 0 ]; then
  set +e
  (cd clients/ts && npm ci --no-audit --no-fund && npm test && npm run test:browser) &&
    (cd clients/status-test && npm ci --no-audit --no-fund && npm test)
  ts_status=$?
  if [ "$ts_status" -eq 0 ] && ! git diff --quiet -- clients/ts/web-dist; then
    echo "clients/ts/web-dist differs from what the sources build: run npm run build in clients/ts and commit it" >&2
    git diff --stat -- clients/ts/web-dist >&2
    ts_status=1
  fi
  set -e
fi

# Alerts, recording rules and the dashboard (deploy/prometheus, deploy/grafana): promtool checks
# and unit-tests every rule (each alert fires in one case and not in another); then a real
# Prometheus scrapes the all-in-one under a short swarm, and every dashboard query and
# recording rule must return data.
ops_status=0
command -v promtool >/dev/null 2>&1 || apt_install prometheus || ops_status=1
if [ "$ops_status" -eq 0 ]; then
  set +e
  promtool check rules deploy/prometheus/alerts.yml &&
    promtool test rules deploy/prometheus/alerts.test.yml &&
    promtool check config deploy/prometheus/prometheus.example.yml &&
    python3 deploy/prometheus/live_test.py target/debug
  ops_status=$?
  set -e
fi

echo
echo "tests: ${passed} passed, ${failed} failed"
if [ "$ops_status" -eq 0 ]; then
  echo "alerts, dashboard and a real Prometheus (promtool, live_test.py): passed"
else
  echo "alerts, dashboard and a real Prometheus (promtool, live_test.py): FAILED" >&2
fi
if [ "$ts_status" -eq 0 ]; then
  echo "typescript client and status page in a browser (npm test, test:browser, status-test): passed"
else
  echo "typescript client and status page in a browser (npm test, test:browser, status-test): FAILED" >&2
fi
[ "$status" -eq 0 ] && [ "$ts_status" -eq 0 ] && [ "$ops_status" -eq 0 ]
