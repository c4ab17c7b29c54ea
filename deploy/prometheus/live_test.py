#!/usr/bin/env python3
"""Checks the rules and the dashboard against a real Prometheus scraping a real tickroom.

    python3 deploy/prometheus/live_test.py target/debug        # BIN_DIR holds tickroom, tickroom-bot

What it does, all on loopback:
  1. starts the all-in-one (`tickroom --http/--ws/--quic/--metrics 127.0.0.1:0 --ready-file ...`);
  2. starts Debian's Prometheus (/usr/bin/prometheus, or $PROMETHEUS) on a free 127.0.0.1 port with
     a temporary TSDB and a generated config: one job, tickroom-all-in-one, scraping the server's
     metrics listener every second, rule evaluation every second, rule_files = alerts.yml, no
     Alertmanager, no remote storage, no service discovery;
  3. once Prometheus has scraped the idle server, runs a swarm against it
     (`tickroom-bot swarm --bots 20 --ramp 2s --duration 15s --mode duel`);
  4. once Prometheus has scraped the end of the swarm, evaluates through /api/v1/query
       - every query of deploy/grafana/tickroom.json (panels and template variables, with
         $instance as "All" (.*) and $__rate_interval as 1m), and
       - every recording rule of alerts.yml: both its recorded series and its expression,
     and asserts each returns at least one series with a number (not NaN): a panel that shows
     nothing is a bug. It also asserts that Prometheus loaded every rule of alerts.yml and that
     every rule, alerts included, evaluates without error.

It kills only the processes it started (by their handles, in a finally), prints one line per
check and `N passed, N failed`, and exits 1 on any failure. It takes about 25 s.
Needs python3, PyYAML (Debian: python3-yaml) and Debian's `prometheus` package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write("live_test.py needs PyYAML: apt-get install python3-yaml\n")
    sys.exit(2)

HERE = Path(__file__).resolve().parent
RULES = HERE / "alerts.yml"
DASHBOARD = HERE.parent / "grafana" / "tickroom.json"
JOB = "tickroom-all-in-one"
BOTS = 20
# Grafana's built-in variables, as the test substitutes them. 1m covers the whole run.
BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}


class Failure(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if this script dies without its cleanup (e.g. SIGKILL)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the finally below still stops the children
        pass


def start(argv: list[str], logfile: Path, deadline: float) -> subprocess.Popen:
    """Starts a process; retries while its binary is briefly missing (being rebuilt)."""
    while True:
        try:
            with open(logfile, "ab") as out:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        except OSError as e:  # ENOENT or ETXTBSY while cargo replaces the binary
            if time.monotonic() > deadline:
                raise Failure(f"cannot start {argv[0]}: {e}")
            time.sleep(0.5)


def stop(proc: subprocess.Popen | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log(f"note: {name} (pid {proc.pid}) ignored SIGTERM; killing it")
        proc.kill()
        proc.wait(timeout=10)


def tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines[-n:])


def wait_for(what: str, check, timeout: float, interval: float = 0.25):
    """Polls check() until it returns something truthy, or fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last_err = e
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}"
                          + (f" (last error: {last_err})" if last_err else ""))
        time.sleep(interval)


class Prom:
    def __init__(self, base: str):
        self.base = base

    def api(self, path: str, **params) -> dict:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = http_get(url)
        except urllib.error.HTTPError as e:
            body = e.read()
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise Failure(f"{path} {params}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] != "vector":
            raise Failure(f"{expr}: result type {data['resultType']}")
        return data["result"]

    def value(self, expr: str) -> float | None:
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None


# --- What to evaluate ---------------------------------------------------------------------------

def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and query variable, variables substituted."""
    dash = json.loads(path.read_text())
    variables = dict(BUILTINS)
    out = []
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            variables[var["name"]] = var.get("allValue") or ".*"
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", q or "")
            if not m:
                raise Failure(f"variable {var['name']}: cannot read its query {q!r}")
            out.append((f"variable ${var['name']}", m.group(1)))
        elif var.get("type") in ("custom", "constant", "textbox"):
            variables[var["name"]] = var.get("allValue") or var.get("query", "").split(",")[0]

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    def substitute(expr: str, where: str) -> str:
        def repl(m):
            name = m.group(1) or m.group(2)
            if name not in variables:
                raise Failure(f"{where}: unknown variable ${name} in {expr}")
            return variables[name]
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("hide") or not t.get("expr"):
                continue
            where = f"panel {p.get('title')!r} {t.get('refId')}"
            out.append((where, substitute(t["expr"], where)))
    return out


def recording_rules(path: Path) -> tuple[list[tuple[str, str]], int]:
    doc = yaml.safe_load(path.read_text())
    out, total = [], 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            total += 1
            if "record" in rule:
                out.append((rule["record"], " ".join(rule["expr"].split())))
    return out, total


def has_number(result: list[dict]) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


# --- The run ------------------------------------------------------------------------------------

def run(bin_dir: Path, prometheus: str, tmp: Path, procs: dict) -> tuple[int, int]:
    t0 = time.monotonic()
    tickroom, bot = bin_dir / "tickroom", bin_dir / "tickroom-bot"
    wait_for(f"{tickroom} and {bot}", lambda: tickroom.exists() and bot.exists(), 60, 0.5)

    queries = dashboard_queries(DASHBOARD)
    records, n_rules = recording_rules(RULES)

    # 1. The all-in-one.
    ready = tmp / "ready.json"
    procs["tickroom"] = start([str(tickroom), "--http", "127.0.0.1:0", "--ws", "127.0.0.1:0",
                               "--quic", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                               "--ready-file", str(ready)], tmp / "tickroom.log", time.monotonic() + 30)

    def read_ready():
        if procs["tickroom"].poll() is not None:
            raise Failure(f"tickroom exited with {procs['tickroom'].returncode}:\n{tail(tmp / 'tickroom.log')}")
        return json.loads(ready.read_text()) if ready.exists() and ready.stat().st_size else None

    addrs = wait_for("the ready file", read_ready, 30)
    metrics_url = f"http://{addrs['metrics']}/metrics"
    wait_for("/metrics", lambda: b"tickroom_ticks_total" in http_get(metrics_url), 10)
    log(f"tickroom up: http {addrs['http']}, metrics {addrs['metrics']} ({time.monotonic() - t0:.1f} s)")

    # 2. Prometheus, on a port picked by binding port 0 (another process may take it before
    # Prometheus binds it: then it exits and the next try picks another).
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [addrs["metrics"]]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for attempt in range(3):
        port = free_port()
        procs["prometheus"] = start([prometheus, f"--config.file={tmp / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp / f'tsdb{attempt}'}",
                                     f"--web.listen-address=127.0.0.1:{port}",
                                     "--log.level=warn"], tmp / "prometheus.log", time.monotonic() + 5)
        prom = Prom(f"http://127.0.0.1:{port}")

        def prom_ready():
            if procs["prometheus"].poll() is not None:
                raise Failure(f"prometheus exited with {procs['prometheus'].returncode}:\n"
                              f"{tail(tmp / 'prometheus.log')}")
            try:
                return http_get(f"{prom.base}/-/ready", timeout=1) is not None
            except urllib.error.HTTPError:  # 503 while starting
                return False

        try:
            wait_for("Prometheus to be ready", prom_ready, 30)
            break
        except Failure as e:
            if attempt == 2 or "address already in use" not in str(e):
                raise
            log(f"note: port {port} was taken; trying another")
    # Two scrapes of the idle server, so every counter has its zero before the swarm.
    wait_for("two scrapes of the idle server",
             lambda: (prom.value(f'count_over_time(up{{job="{JOB}"}}[5m])') or 0) >= 2
             and prom.value(f'up{{job="{JOB}"}}') == 1, 20)
    log(f"prometheus up on 127.0.0.1:{port}, scraping ({time.monotonic() - t0:.1f} s)")

    # 3. The swarm.
    procs["swarm"] = start([str(bot), "swarm", "--server", f"http://{addrs['http']}",
                            "--metrics-url", metrics_url, "--bots", str(BOTS), "--ramp", "2s",
                            "--duration", "15s", "--mode", "duel", "--no-progress"],
                           tmp / "swarm.log", time.monotonic() + 30)
    try:
        rc = procs["swarm"].wait(timeout=45)
    except subprocess.TimeoutExpired:
        raise Failure(f"the swarm did not end within 45 s:\n{tail(tmp / 'swarm.log')}")
    if rc != 0:
        raise Failure(f"the swarm exited with {rc}:\n{tail(tmp / 'swarm.log')}")
    swarm_end = time.time()
    log(f"swarm done ({time.monotonic() - t0:.1f} s):\n{tail(tmp / 'swarm.log', 14)}")

    # 4. Wait until Prometheus has a scrape from after the swarm, and has evaluated rules on it.
    def scraped_after_swarm():
        joins = prom.value(f'tickroom_joins_total{{job="{JOB}"}}')
        last = prom.value(f'timestamp(up{{job="{JOB}"}})')
        return joins is not None and joins >= BOTS and last is not None and last > swarm_end

    wait_for("a scrape after the swarm with its joins", scraped_after_swarm, 15)

    def rules_evaluated():
        groups = prom.api("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(_ts(r.get("lastEvaluation", "")) > swarm_end for r in rules)
        return groups if rules and done else None

    groups = wait_for("every rule to be evaluated after the swarm", rules_evaluated, 15)

    # 5. The checks.
    passed, failed = 0, []

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal passed
        if ok:
            passed += 1
            log(f"ok    {name}{(': ' + detail) if detail else ''}")
        else:
            failed.append(name)
            log(f"FAIL  {name}{(': ' + detail) if detail else ''}")

    rules = [r for g in groups for r in g["rules"]]
    check(f"Prometheus loaded alerts.yml: {len(groups)} groups, {len(rules)} rules",
          len(rules) == n_rules, "" if len(rules) == n_rules else f"expected {n_rules}")
    players = prom.value(f'max_over_time(tickroom_sessions{{job="{JOB}"}}[5m])') or 0
    joins = prom.value(f'tickroom_joins_total{{job="{JOB}"}}') or 0
    check(f"Prometheus saw the swarm: {joins:.0f} joins, at most {players:.0f} players at once",
          joins >= BOTS and players >= BOTS, "" if players >= BOTS else f"expected {BOTS}")
    bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") != "ok"]
    check("every rule evaluates without error", not bad, "; ".join(bad))

    checks = [(f"recording rule {name} (recorded series)", name) for name, _ in records]
    checks += [(f"recording rule {name} (expression)", expr) for name, expr in records]
    checks += [(f"dashboard {where}", expr) for where, expr in queries]
    dup = sorted({n for n, _ in checks if [c for c, _ in checks].count(n) > 1})
    check("every dashboard panel has a title of its own", not dup, ", ".join(dup))

    # Rule results and scrapes keep arriving: re-query what is still empty for a few seconds.
    pending = list(checks)
    deadline = time.monotonic() + 10
    results: dict[str, list[dict]] = {}
    while pending:
        still = []
        for name, expr in pending:
            try:
                results[name] = prom.query(expr)
            except Failure as e:
                results[name] = []
                log(f"      {name}: {e}")
            if not has_number(results[name]):
                still.append((name, expr))
        pending = still
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    for name, expr in checks:
        res = results.get(name, [])
        shown = ", ".join(f"{_labels(s['metric'])} {float(s['value'][1]):.6g}" for s in res[:3])
        if len(res) > 3:
            shown += f", ... ({len(res)} series)"
        if not res:
            check(name, False, f"no series: {expr}")
        elif not has_number(res):
            check(name, False, f"only NaN: {expr}")
        else:
            check(name, True, shown)

    firing = [f"{a['labels']['alertname']}({a['state']})" for a in prom.api("/api/v1/alerts")["alerts"]]
    log(f"info  alerts pending or firing now: {', '.join(firing) or 'none'}")
    log(f"done in {time.monotonic() - t0:.1f} s")
    return passed, len(failed)


def _ts(rfc3339: str) -> float:
    """Prometheus' lastEvaluation (RFC 3339 with nanoseconds) as a Unix time."""
    from datetime import datetime
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if not m:
        return 0.0
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


def _labels(metric: dict) -> str:
    name = metric.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k not in ("__name__", "job"))
    return f"{name}{{{rest}}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin_dir", nargs="?", default=str(HERE.parent.parent / "target" / "debug"),
                    help="directory with tickroom and tickroom-bot (default: target/debug)")
    ap.add_argument("--prometheus", default=os.environ.get("PROMETHEUS", "/usr/bin/prometheus"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, config, TSDB)")
    args = ap.parse_args()

    prometheus = shutil.which(args.prometheus) or args.prometheus
    if not os.access(prometheus, os.X_OK):
        print(f"live_test.py: no Prometheus at {args.prometheus} (apt-get install prometheus)", file=sys.stderr)
        return 2

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM (a CI timeout) and SIGHUP unwind like Ctrl-C, so the finally stops the children.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    tmp = Path(tempfile.mkdtemp(prefix="tickroom-prom-"))
    procs: dict[str, subprocess.Popen | None] = {}
    passed, failed = 0, 0
    try:
        passed, failed = run(Path(args.bin_dir).resolve(), prometheus, tmp, procs)
    except KeyboardInterrupt as e:
        failed += 1
        log(f"FAIL  interrupted{(' by ' + str(e)) if str(e) else ''}")
    except Failure as e:
        failed += 1
        log(f"FAIL  {e}")
        for name in ("tickroom", "prometheus", "swarm"):
            if name in procs:
                log(f"--- {name} log (end):\n{tail(tmp / (name + '.log'))}")
    finally:
        for name in ("swarm", "prometheus", "tickroom"):
            stop(procs.get(name), name)
        if args.keep or failed:
            log(f"logs and config kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
