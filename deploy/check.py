#!/usr/bin/env python3
"""Checks tickroom's deployment files (deploy/) against the real binary.

    python3 deploy/check.py target/debug/tickroom     # check deploy/ (exit 1 on any problem)
    python3 deploy/check.py --self-test [BINARY]      # the checker must catch planted mistakes

What it checks:
  * every YAML file under deploy/ parses; every document has apiVersion, kind, metadata.name,
    and its kind is one of the expected ones; the gateway Deployment, room StatefulSet, Redis
    Deployment, their Services and the Secrets are all there;
  * every container has resources (cpu and memory requests, a memory limit), readiness and
    liveness probes, and ports with names and explicit protocols; tickroom's probes use
    /healthz; tickroom pods carry the prometheus.io annotations on the metrics port, run as
    non-root with a read-only root file system; the room pods' --server-id is the pod name
    (downward API), they have a TCP and a UDP port and a grace period for SIGTERM;
  * every `--flag` in deploy/ (k8s args, systemd ExecStart*, the Dockerfile's CMD, the env file
    examples' *_FLAGS, and `tickroom ...` commands in the Markdown files) exists in the
    binary's `--help` output for its role (`--help`, `room --help`, `gateway --help`,
    `room-keys --help`), takes a value exactly when the binary says so, and fits its role
    (the binary's roles share one flag set, so e.g. `gateway --drain` would parse: a table
    here says which flags mean nothing, or something unsafe, for a role);
  * listener flags (--http/--ws/--quic/--metrics) match the declared container ports and their
    protocols; a non-loopback --http/--ws has TLS, or --insecure-plaintext in a file that
    documents the TLS-terminating proxy; room servers never get the gateways' key ring;
  * Services select existing pods and target declared ports; referenced Secrets and keys exist;
    no file holds something that looks like real key material (64+ hex digits);
  * the systemd units parse as INI and have Restart=on-failure, LimitNOFILE, ExecStart, a
    non-root User, an EnvironmentFile, TimeoutStopSec >= 10 s and basic hardening; the room
    unit is a template whose instance name is --server-id;
  * the Dockerfile: its header says it is not built in CI, rust:1-bookworm builder,
    debian:bookworm-slim runtime, non-root USER, a UDP port exposed.

Needs python3 and PyYAML (Debian: python3-yaml). Runs in well under a second.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write("deploy/check.py needs PyYAML: apt-get install python3-yaml (or pip install pyyaml)\n")
    sys.exit(2)

DEPLOY_DIR = Path(__file__).resolve().parent

# Roles and the arguments that print their help.
HELP_ARGS = {
    "all-in-one": ["--help"],
    "room": ["room", "--help"],
    "gateway": ["gateway", "--help"],
    "room-keys": ["room-keys", "--help"],
}
SUBCOMMANDS = ("room", "gateway", "room-keys")

# The roles share one flag set (clap), so `--help` alone cannot tell a flag that a role ignores.
# Flags that mean nothing for a role, or that would be unsafe there, with the reason.
ROLE_POLICY = {
    "gateway": {
        "--ws": "the gateway has no WebSocket listener",
        "--quic": "the gateway has no QUIC listener",
        "--cert": "QUIC certificate: the gateway has no QUIC listener",
        "--key": "QUIC key: the gateway has no QUIC listener",
        "--server-id": "room servers have ids, gateways do not",
        "--drain": "room role only",
        "--room-keys-file": "room role only (the gateway holds the whole ring)",
        "--public-host": "advertised room-server address: room role only",
        "--workers": "room worker threads: room role only",
        "--max-rooms": "room role only",
        "--max-connections": "player connections: room role only",
        "--max-prelogin-connections": "player connections: room role only",
        "--max-connections-per-ip": "player connections: room role only",
        "--handshake-timeout-ms": "player handshakes: room role only",
        "--quic-retry": "QUIC: room role only",
        "--max-tick-p99-ms": "room admission: room role only",
        "--match-result-ttl-s": "the room server stores match results, with this TTL",
    },
    "room": {
        "--keys-file": "a room server must not hold the gateways' key ring (it could sign "
        "sessions and tickets): give it --room-keys-file or TICKROOM_ROOM_KEYS",
        "--allow-origin": "CORS of the gateway's API: gateway role only",
        "--gateway-rate-per-ip": "gateway role only",
        "--gateway-rate-burst": "gateway role only",
        "--session-max-lifetime-s": "sessions are the gateway's",
    },
}

# Listener flags: the container port name each must match, its protocol, which roles bind it.
LISTENERS = {
    "--http": ("http", "TCP", {"all-in-one", "room", "gateway"}),
    "--ws": ("ws", "TCP", {"all-in-one", "room"}),
    "--quic": ("quic", "UDP", {"all-in-one", "room"}),
    "--metrics": ("metrics", "TCP", {"all-in-one", "room", "gateway"}),
}
DEFAULT_ADDRS = {"--http": "127.0.0.1:7700", "--ws": "127.0.0.1:7701"}

EXPECTED_KINDS = {
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
COMPONENT = "app.kubernetes.io/component"

SELF_TEST_FLAG = "--no-such-flag-for-self-test"


# ---------------------------------------------------------------------------------------------
# The binary's flags


@dataclass
class Flag:
    takes_value: bool
    help: str


def parse_help(text: str) -> dict[str, Flag]:
    """Flags from clap's --help output (long or short form)."""
    flags: dict[str, Flag] = {}
    lines = text.splitlines()
    line_re = re.compile(r"^(\s+)(?:-[A-Za-z0-9], )?(--[A-Za-z0-9][A-Za-z0-9-]*)(?:[ =]<[^>]+>)?(.*)$")
    for i, line in enumerate(lines):
        m = line_re.match(line)
        if not m:
            continue
        indent, name, rest = m.group(1), m.group(2), m.group(3)
        takes_value = bool(re.match(r"^(\s+)(?:-[A-Za-z0-9], )?--[A-Za-z0-9-]+[ =]<", line))
        desc = rest.strip()
        if not desc:  # long help: the description is on the next, more indented lines
            for nxt in lines[i + 1:]:
                if not nxt.strip():
                    break
                if len(nxt) - len(nxt.lstrip()) <= len(indent):
                    break
                desc += (" " if desc else "") + nxt.strip()
        flags[name] = Flag(takes_value, desc)
    return flags


class HelpError(Exception):
    pass


def load_helps(binary: str) -> dict[str, dict[str, Flag]]:
    helps = {}
    for role, args in HELP_ARGS.items():
        try:
            out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HelpError(f"cannot run `{binary} {' '.join(args)}`: {e}")
        if out.returncode != 0:
            raise HelpError(f"`{binary} {' '.join(args)}` exited {out.returncode}: {out.stderr.strip()[:300]}")
        flags = parse_help(out.stdout)
        if "--help" not in flags or (role != "room-keys" and len(flags) < 5):
            raise HelpError(f"`{binary} {' '.join(args)}` printed no usable flag list (found {sorted(flags)})")
        helps[role] = flags
    return helps


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class Report:
    root: Path
    helps: dict[str, dict[str, Flag]]
    # Set: tickroom command lines are collected instead of checked (the self-test's stand-in).
    collect: list | None = None
    errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    invocations: int = 0
    flags: int = 0

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        try:
            return str(Path("deploy") / p.relative_to(self.root))
        except ValueError:
            return str(p)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def ok(self, line: str) -> None:
        self.checked.append(line)

    def command(self, inv: "Invocation") -> None:
        if self.collect is not None:
            self.collect.append(inv)
        else:
            check_invocation(inv, self.helps, self)


# ---------------------------------------------------------------------------------------------
# One tickroom command line


@dataclass
class Invocation:
    where: str  # file and place, for messages
    role: str
    args: list[str]  # after the role
    file_text: str = ""  # the whole file, for the --insecure-plaintext rule
    env_names: set[str] | None = None  # k8s: names $(VAR) may use
    # k8s: whether a TLS-terminating Ingress routes to this pod (None: judge by the file's text).
    tls_ingress: bool | None = None
    values: dict[str, str] = field(default_factory=dict)


def split_role(tokens: list[str]) -> tuple[str, list[str]]:
    if tokens and tokens[0] in SUBCOMMANDS:
        return tokens[0], tokens[1:]
    return "all-in-one", tokens


def is_placeholder(value: str) -> bool:
    return bool(re.search(r"\$\(|\$\{|\$[A-Za-z_]|%[a-zA-Z]", value))


def check_invocation(inv: Invocation, helps: dict[str, dict[str, Flag]], rep: Report) -> None:
    rep.invocations += 1
    known = helps[inv.role]
    shown = f"`tickroom{'' if inv.role == 'all-in-one' else ' ' + inv.role}`"
    i, n = 0, len(inv.args)
    used: list[str] = []
    while i < n:
        tok = inv.args[i]
        if tok.startswith("--"):
            name, eq, inline = tok.partition("=")
            rep.flags += 1
            flag = known.get(name)
            if flag is None:
                rep.error(inv.where, f"{name}: no such flag in {shown} --help "
                          f"(role {inv.role}; the binary knows {len(known)} flags)")
                # Skip a value that follows, so one unknown flag gives one error.
                if not eq and i + 1 < n and not inv.args[i + 1].startswith("-"):
                    i += 1
                i += 1
                continue
            used.append(name)
            if flag.takes_value:
                if eq:
                    value = inline
                elif i + 1 < n and not inv.args[i + 1].startswith("--"):
                    value = inv.args[i + 1]
                    i += 1
                else:
                    rep.error(inv.where, f"{name} needs a value ({shown} --help)")
                    value = ""
                if name in inv.values and name != "--allow-origin":
                    rep.error(inv.where, f"{name} given twice")
                inv.values[name] = value
                if inv.env_names is not None:
                    for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value):
                        if var not in inv.env_names:
                            rep.error(inv.where, f"{name} $({var}): no env var {var} in the container "
                                      "(Kubernetes would pass the text literally)")
            else:
                if eq:
                    rep.error(inv.where, f"{name} takes no value ({shown} --help)")
                inv.values[name] = ""
        elif tok.startswith("-") and tok != "-":
            rep.flags += 1
            if tok not in ("-h", "-V"):
                rep.error(inv.where, f"{tok}: no such flag in {shown} --help")
        else:
            rep.error(inv.where, f"stray argument {tok!r}: {shown} takes no positional arguments")
        i += 1

    # Role fit.
    for name in used:
        reason = ROLE_POLICY.get(inv.role, {}).get(name)
        if reason:
            rep.error(inv.where, f"{name} in the {inv.role} role: {reason}")
        desc = known[name].help if name in known else ""
        if inv.role == "gateway" and desc.startswith("Room role") and name not in ROLE_POLICY["gateway"]:
            rep.error(inv.where, f"{name} in the gateway role: its help says \"{desc[:60]}...\"")
    v = inv.values
    if inv.role in ("room", "all-in-one") and "--redis" in v and "--server-id" not in v:
        rep.error(inv.where, "--redis without --server-id: the binary refuses to start (exit 2)")
    # TLS on non-loopback listeners, as the binary enforces it.
    if inv.role in ("room", "gateway", "all-in-one"):
        tls = "--tls-cert" in v or "--tls-self-signed" in v
        for flag in ("--http", "--ws"):
            if flag == "--ws" and inv.role == "gateway":
                continue
            addr = v.get(flag, DEFAULT_ADDRS[flag])
            if is_placeholder(addr):
                continue
            host = addr.rsplit(":", 1)[0].strip("[]")
            loopback = host in ("localhost", "::1") or host.startswith("127.")
            if not loopback and not tls and "--insecure-plaintext" not in v:
                rep.error(inv.where, f"{flag} {addr} is not loopback and there is no TLS "
                          "(--tls-cert/--tls-key or --tls-self-signed): the binary refuses to start")
        for a, b in (("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert"), ("--cert", "--key"), ("--key", "--cert")):
            if a in v and b not in v:
                rep.error(inv.where, f"{a} without {b}: the binary refuses it")
        if "--tls-cert" in v and "--tls-self-signed" in v:
            rep.error(inv.where, "--tls-cert and --tls-self-signed conflict")
        if "--insecure-plaintext" in v:
            if inv.tls_ingress is False:
                rep.error(inv.where, "--insecure-plaintext, but no Ingress with spec.tls routes to a Service "
                          "of this pod: nothing in front terminates TLS")
            elif inv.tls_ingress is None and "tls-terminating" not in inv.file_text.lower():
                rep.error(inv.where, "--insecure-plaintext, but the file does not document the "
                          "TLS-terminating proxy in front (say \"TLS-terminating\" where it is)")


# ---------------------------------------------------------------------------------------------
# Kubernetes


def k8s_where(rep: Report, path: Path, doc: dict, extra: str = "") -> str:
    kind = doc.get("kind", "?")
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{rep.rel(path)} {kind}/{name}{(' ' + extra) if extra else ''}"


def quantity_ok(value) -> bool:
    return value is not None and str(value).strip() != ""


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def is_tickroom_image(image: str) -> bool:
    repo = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return repo == "tickroom" or repo.startswith("tickroom-")


def check_yaml_files(root: Path, rep: Report) -> list[tuple[Path, dict, str]]:
    """Parses every YAML file; returns the documents with their file text."""
    docs = []
    # Kubernetes manifests only (deploy/prometheus holds Prometheus rule files).
    files = sorted(p for p in (root / "k8s").rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        rep.error(rep.rel(root / "k8s"), "no YAML files")
    for path in files:
        text = path.read_text()
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            rep.error(rep.rel(path), f"YAML does not parse: {' '.join(str(e).split())}")
            continue
        names = []
        for idx, doc in enumerate(loaded):
            if doc is None:
                continue
            where = f"{rep.rel(path)} document {idx + 1}"
            if not isinstance(doc, dict):
                rep.error(where, "not a mapping")
                continue
            missing = [k for k in ("apiVersion", "kind") if not doc.get(k)]
            if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
                missing.append("metadata.name")
            if missing:
                rep.error(where, f"missing {', '.join(missing)}")
                continue
            if (doc["apiVersion"], doc["kind"]) not in EXPECTED_KINDS:
                rep.error(k8s_where(rep, path, doc), f"unexpected kind {doc['apiVersion']} {doc['kind']} "
                          f"(expected: {', '.join(sorted(f'{a} {k}' for a, k in EXPECTED_KINDS))})")
                continue
            docs.append((path, doc, text))
            names.append(f"{doc['kind']}/{doc['metadata']['name']}")
        rep.ok(f"yaml     {rep.rel(path)}: parses; {', '.join(names) or 'no documents'}")
    return docs


def probe_port_ok(probe: dict, ports: list[dict]) -> tuple[bool, str]:
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            port = probe[kind].get("port")
            names = {p.get("name") for p in ports}
            numbers = {p.get("containerPort") for p in ports}
            if port in names or port in numbers:
                return True, kind
            return False, f"{kind} port {port!r} is not a declared container port"
    if "exec" in probe:
        return True, "exec"
    return False, "no httpGet, tcpSocket, grpc or exec"


def check_k8s(docs: list[tuple[Path, dict, str]], rep: Report) -> None:
    secrets: dict[str, set[str]] = {}
    for path, doc, _ in docs:
        if doc["kind"] == "Secret":
            keys = set((doc.get("data") or {}).keys()) | set((doc.get("stringData") or {}).keys())
            secrets[doc["metadata"]["name"]] = keys
            for key, value in (doc.get("stringData") or {}).items():
                if key.startswith("TICKROOM_") and "REPLACE" not in str(value):
                    rep.error(k8s_where(rep, path, doc), f"{key} is not a placeholder (REPLACE_...): "
                              "never commit real keys")
    workloads = [(p, d, t) for p, d, t in docs if d["kind"] in WORKLOAD_KINDS]
    components = {}
    for path, doc, _ in workloads:
        comp = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels", {}).get(COMPONENT)
        components.setdefault((doc["kind"], comp), []).append(doc["metadata"]["name"])
    for kind, comp in (("Deployment", "gateway"), ("StatefulSet", "room"), ("Deployment", "redis")):
        if (kind, comp) not in components:
            rep.error("deploy/k8s", f"no {kind} with pod label {COMPONENT}: {comp}")
    if not secrets:
        rep.error("deploy/k8s", "no Secret (example) documents")

    # Services that a TLS-terminating Ingress routes to.
    tls_services: set[str] = set()
    for _, doc, _ in docs:
        if doc["kind"] == "Ingress" and (doc.get("spec") or {}).get("tls"):
            spec = doc["spec"]
            backends = [spec.get("defaultBackend") or {}]
            for rule in spec.get("rules") or []:
                backends += [p.get("backend") or {} for p in ((rule.get("http") or {}).get("paths") or [])]
            tls_services |= {(b.get("service") or {}).get("name") for b in backends} - {None}
    services = [d for _, d, _ in docs if d["kind"] == "Service"]
    pod_ports: list[tuple[dict, list[dict]]] = []  # (template labels, container ports)
    for path, doc, text in workloads:
        spec = doc.get("spec") or {}
        tmpl = spec.get("template") or {}
        tmeta = tmpl.get("metadata") or {}
        labels = tmeta.get("labels") or {}
        pspec = tmpl.get("spec") or {}
        where0 = k8s_where(rep, path, doc)
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        if not labels_match(sel, labels):
            rep.error(where0, "spec.selector.matchLabels does not match the pod template's labels")
        containers = pspec.get("containers") or []
        if not containers:
            rep.error(where0, "no containers")
        all_ports = []
        for c in containers:
            all_ports += c.get("ports") or []
        pod_ports.append((labels, all_ports))
        volumes = {v.get("name"): v for v in pspec.get("volumes") or []}
        for v in volumes.values():
            if "secret" in v:
                sname = v["secret"].get("secretName")
                if sname not in secrets:
                    rep.error(where0, f"volume {v.get('name')}: Secret {sname} is not defined in deploy/ (examples)")
                for item in v["secret"].get("items") or []:
                    if sname in secrets and item.get("key") not in secrets[sname]:
                        rep.error(where0, f"volume {v.get('name')}: Secret {sname} has no key {item.get('key')}")
        tickroom_pod = False
        for c in containers:
            cname = c.get("name", "?")
            where = k8s_where(rep, path, doc, f"container {cname}")
            image = str(c.get("image", ""))
            if not image:
                rep.error(where, "no image")
            elif image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
                rep.error(where, f"image {image} has no pinned tag")
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for what, ok in (("requests.cpu", quantity_ok(req.get("cpu"))),
                             ("requests.memory", quantity_ok(req.get("memory"))),
                             ("limits.memory", quantity_ok(lim.get("memory")))):
                if not ok:
                    rep.error(where, f"resources.{what} missing")
            ports = c.get("ports") or []
            if not ports:
                rep.error(where, "no ports")
            for p in ports:
                if not p.get("name"):
                    rep.error(where, f"port {p.get('containerPort')} has no name")
                if p.get("protocol") not in ("TCP", "UDP"):
                    rep.error(where, f"port {p.get('name') or p.get('containerPort')} has no explicit "
                              f"protocol TCP or UDP (got {p.get('protocol')!r})")
                if not isinstance(p.get("containerPort"), int):
                    rep.error(where, f"port {p.get('name')} has no numeric containerPort")
            for probe_name in ("readinessProbe", "livenessProbe"):
                probe = c.get(probe_name)
                if not isinstance(probe, dict):
                    rep.error(where, f"no {probe_name}")
                    continue
                ok, detail = probe_port_ok(probe, ports)
                if not ok:
                    rep.error(where, f"{probe_name}: {detail}")
            env = c.get("env") or []
            env_names = {e.get("name") for e in env}
            for e in env:
                ref = ((e.get("valueFrom") or {}).get("secretKeyRef")) or None
                if ref:
                    if ref.get("name") not in secrets:
                        rep.error(where, f"env {e.get('name')}: Secret {ref.get('name')} is not defined in deploy/ (examples)")
                    elif ref.get("key") not in secrets[ref.get("name")]:
                        rep.error(where, f"env {e.get('name')}: Secret {ref.get('name')} has no key {ref.get('key')}")
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes:
                    rep.error(where, f"volumeMount {m.get('name')} has no volume")
            if not is_tickroom_image(image):
                continue
            tickroom_pod = True
            tokens = [str(t) for t in (c.get("command") or []) + (c.get("args") or [])]
            if c.get("command"):
                if os.path.basename(tokens[0]) != "tickroom":
                    rep.error(where, f"command {tokens[0]!r} is not the tickroom binary")
                    continue
                tokens = tokens[1:]
            role, args = split_role(tokens)
            fronted = any(svc["metadata"]["name"] in tls_services
                          and labels_match((svc.get("spec") or {}).get("selector") or {}, labels) for svc in services)
            inv = Invocation(where, role, args, text, env_names, tls_ingress=fronted)
            before = len(rep.errors)
            rep.command(inv)
            v = inv.values
            # tickroom's probes: /healthz, on its own listeners.
            for probe_name in ("readinessProbe", "livenessProbe"):
                probe = c.get(probe_name) or {}
                http = probe.get("httpGet")
                if not http:
                    rep.error(where, f"{probe_name}: tickroom answers /healthz over HTTP(S); use httpGet")
                elif http.get("path") != "/healthz":
                    rep.error(where, f"{probe_name}: path {http.get('path')!r}, expected /healthz")
                elif http.get("port") == "http":
                    tls = "--tls-cert" in v or "--tls-self-signed" in v
                    if tls != (http.get("scheme") == "HTTPS"):
                        rep.error(where, f"{probe_name}: the http listener serves {'HTTPS' if tls else 'plain HTTP'}: "
                                  f"scheme must be {'HTTPS' if tls else 'HTTP'}")
            # Listener flags agree with the declared ports.
            by_name = {p.get("name"): p for p in ports}
            for flag, (pname, proto, roles) in LISTENERS.items():
                if role not in roles:
                    continue
                if flag not in v:
                    rep.error(where, f"{flag} not given: the default binds loopback, unreachable from outside the pod")
                    continue
                if is_placeholder(v[flag]):
                    continue
                try:
                    port = int(v[flag].rsplit(":", 1)[1])
                except (IndexError, ValueError):
                    rep.error(where, f"{flag} {v[flag]!r} is not host:port")
                    continue
                p = by_name.get(pname)
                if p is None:
                    rep.error(where, f"{flag} listens on {port}, but no container port is named {pname!r}")
                elif p.get("containerPort") != port or p.get("protocol") != proto:
                    rep.error(where, f"{flag} listens on {port}/{proto}, but port {pname!r} is "
                              f"{p.get('containerPort')}/{p.get('protocol')}")
            # Keys by role.
            if role == "room" and ("TICKROOM_KEYS" in env_names or "--keys-file" in v):
                rep.error(where, "a room server gets the gateways' key ring (TICKROOM_KEYS): give it only "
                          "TICKROOM_ROOM_KEYS (`tickroom room-keys`)")
            if role == "room" and "TICKROOM_ROOM_KEYS" not in env_names and "--room-keys-file" not in v:
                rep.error(where, "no TICKROOM_ROOM_KEYS or --room-keys-file")
            if role == "gateway" and "TICKROOM_KEYS" not in env_names and "--keys-file" not in v:
                rep.error(where, "no TICKROOM_KEYS or --keys-file")
            if role == "room":
                sid = v.get("--server-id", "")
                m = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sid)
                field_path = None
                if m:
                    for e in env:
                        if e.get("name") == m.group(1):
                            field_path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
                if field_path != "metadata.name":
                    rep.error(where, f"--server-id {sid!r}: expected $(VAR) with VAR from the downward API "
                              "fieldRef metadata.name (the pod name)")
                if doc["kind"] != "StatefulSet":
                    rep.error(where, "room servers belong in a StatefulSet (stable, unique pod names)")
                protos = {p.get("protocol") for p in ports}
                if not {"TCP", "UDP"} <= protos:
                    rep.error(where, f"room server ports need TCP (WebSocket) and UDP (QUIC), got {sorted(map(str, protos))}")
                grace = pspec.get("terminationGracePeriodSeconds", 30)
                prestop = ((c.get("lifecycle") or {}).get("preStop"))
                if not prestop and (not isinstance(grace, int) or grace < 10):
                    rep.error(where, f"terminationGracePeriodSeconds {grace!r}: the room server needs a few "
                              "seconds after SIGTERM to tell its players (>= 10), or a preStop hook")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
                rep.error(where, "securityContext: set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
            if len(rep.errors) == before:
                rep.ok(f"k8s      {where}: role {role}, {len(args)} args, flags, ports, probes, resources ok")
        if tickroom_pod:
            ann = tmeta.get("annotations") or {}
            metrics_port = next((p.get("containerPort") for p in all_ports if p.get("name") == "metrics"), None)
            if str(ann.get("prometheus.io/scrape")) != "true":
                rep.error(where0, "pod template lacks annotation prometheus.io/scrape: \"true\"")
            if str(ann.get("prometheus.io/port")) != str(metrics_port):
                rep.error(where0, f"annotation prometheus.io/port {ann.get('prometheus.io/port')!r} is not "
                          f"the metrics container port {metrics_port}")
            if ann.get("prometheus.io/path", "/metrics") != "/metrics":
                rep.error(where0, "annotation prometheus.io/path must be /metrics")
            psc = pspec.get("securityContext") or {}
            if psc.get("runAsNonRoot") is not True:
                rep.error(where0, "pod securityContext.runAsNonRoot must be true")
        if doc["kind"] == "StatefulSet":
            svc = spec.get("serviceName")
            heads = [d for _, d, _ in docs if d["kind"] == "Service" and d["metadata"]["name"] == svc]
            if not heads:
                rep.error(where0, f"serviceName {svc!r}: no such Service")
            elif (heads[0].get("spec") or {}).get("clusterIP") != "None":
                rep.error(where0, f"serviceName {svc!r} should be a headless Service (clusterIP: None)")

    for path, doc, _ in docs:
        if doc["kind"] != "Service":
            continue
        where = k8s_where(rep, path, doc)
        sel = (doc.get("spec") or {}).get("selector") or {}
        matched = [ports for labels, ports in pod_ports if labels_match(sel, labels)]
        if not matched:
            rep.error(where, f"selector {sel} matches no pod template in deploy/k8s")
            continue
        for sp in (doc.get("spec") or {}).get("ports") or []:
            target = sp.get("targetPort", sp.get("port"))
            proto = sp.get("protocol", "TCP")
            hit = any((p.get("name") == target or p.get("containerPort") == target) and p.get("protocol") == proto
                      for ports in matched for p in ports)
            if not hit:
                rep.error(where, f"port {sp.get('name')}: targetPort {target!r}/{proto} is not a port of the selected pods")
        rep.ok(f"k8s      {where}: selector and target ports ok")


# ---------------------------------------------------------------------------------------------
# systemd


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: sections of multi-valued keys, with backslash continuations."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if pending:
            if line.lstrip().startswith(("#", ";")):
                continue
            line = pending + " " + line.strip()
            pending = ""
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.endswith("\\"):
            pending = stripped[:-1].rstrip()
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
            continue
        if current is None or "=" not in stripped:
            raise ValueError(f"not a key=value line: {stripped[:60]!r}")
        key, _, value = stripped.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    if pending:
        raise ValueError("the file ends in a line continuation")
    return sections


def seconds(value: str) -> float | None:
    total, found = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?", value):
        found = True
        total += float(num) * {"ms": 0.001, "": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}[unit]
    return total if found else None


def env_example_values(root: Path) -> dict[str, list[str]]:
    """VAR=value lines of deploy/systemd/*.env.example, commented-out ones included."""
    values: dict[str, list[str]] = {}
    for p in sorted((root / "systemd").glob("*.env.example")):
        for line in p.read_text().splitlines():
            m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
            if m:
                values.setdefault(m.group(1), []).append(m.group(2))
    return values


def check_systemd(root: Path, rep: Report) -> None:
    units = sorted((root / "systemd").glob("*.service"))
    names = {u.name for u in units}
    for expected in ("tickroom-gateway.service", "tickroom-room@.service"):
        if expected not in names:
            rep.error(rep.rel(root / "systemd"), f"missing {expected}")
    examples = env_example_values(root)
    for unit in units:
        where = rep.rel(unit)
        text = unit.read_text()
        ini = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                        comment_prefixes=("#", ";"), empty_lines_in_values=False)
        ini.optionxform = str
        try:
            ini.read_string(text, source=where)
        except configparser.Error as e:
            rep.error(where, f"does not parse as INI: {' '.join(str(e).split())}")
            continue
        try:
            sections = parse_unit(text)
        except ValueError as e:
            rep.error(where, f"does not parse as a unit file: {e}")
            continue
        svc = sections.get("Service", {})
        for sec in ("Unit", "Service", "Install"):
            if sec not in sections:
                rep.error(where, f"no [{sec}] section")
        last = lambda key: (svc.get(key) or [""])[-1]  # noqa: E731
        if last("Restart") != "on-failure":
            rep.error(where, f"Restart={last('Restart')!r}, expected on-failure")
        nofile = last("LimitNOFILE")
        if not nofile:
            rep.error(where, "no LimitNOFILE")
        elif nofile != "infinity" and not all(x.isdigit() and int(x) >= 65536 for x in nofile.split(":")):
            rep.error(where, f"LimitNOFILE={nofile}: expected >= 65536")
        if not svc.get("ExecStart"):
            rep.error(where, "no ExecStart")
        user = last("User")
        if not user or user in ("root", "0"):
            rep.error(where, f"User={user!r}: run as a dedicated unprivileged user")
        if not svc.get("EnvironmentFile"):
            rep.error(where, "no EnvironmentFile for the secrets")
        stop = seconds(last("TimeoutStopSec") or "90s")
        if stop is None or stop < 10:
            rep.error(where, f"TimeoutStopSec={last('TimeoutStopSec')}: the room server needs a few seconds after SIGTERM")
        if last("KillSignal") not in ("", "SIGTERM", "TERM"):
            rep.error(where, f"KillSignal={last('KillSignal')}: tickroom shuts down gracefully on SIGTERM")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes")):
            if last(key) != want:
                rep.error(where, f"{key}={last(key)!r}, expected {want}")
        is_room = unit.name.startswith("tickroom-room")
        env_files = svc.get("EnvironmentFile", [])
        expected_env = "/etc/tickroom/room.env" if is_room else "/etc/tickroom/gateway.env"
        if expected_env not in [f.lstrip("-") for f in env_files]:
            rep.error(where, f"EnvironmentFile {expected_env} missing")
        if is_room and "TICKROOM_KEYS" not in " ".join(svc.get("UnsetEnvironment", [])).split():
            rep.error(where, "UnsetEnvironment=TICKROOM_KEYS missing: a room server must never see the key ring")
        defaults = {}
        for assignment in svc.get("Environment", []):
            for word in shlex.split(assignment):
                k, _, val = word.partition("=")
                defaults[k] = val
        before = len(rep.errors)
        seen_tickroom = False
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"):
            for cmdline in svc.get(key, []):
                cmd = cmdline.lstrip("-@:+!|")
                cmd = cmd.replace("%%", "\0").replace("%i", "room-1").replace("%I", "room-1") \
                    .replace("%d", "/run/credentials/unit").replace("\0", "%")
                try:
                    words = shlex.split(cmd)
                except ValueError as e:
                    rep.error(where, f"{key}: cannot split the command line: {e}")
                    continue
                if not words or os.path.basename(words[0]) != "tickroom":
                    continue
                seen_tickroom = True
                # $VAR (unbraced) is word-split by systemd: expand its default and the examples.
                expanded, split_vars = [], []
                for w in words[1:]:
                    # ${VAR} is one word: the unit's Environment= default when it has one.
                    w = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                               lambda m: defaults.get(m.group(1)) or m.group(0), w)
                    m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
                    if m:
                        split_vars.append(m.group(1))
                        expanded += shlex.split(defaults.get(m.group(1), ""))
                    else:
                        expanded.append(w)
                role, args = split_role(expanded)
                if key == "ExecStart" and is_room and role != "room":
                    rep.error(where, f"ExecStart runs role {role}, expected room")
                if key == "ExecStart" and not is_room and role != "gateway":
                    rep.error(where, f"ExecStart runs role {role}, expected gateway")
                inv = Invocation(f"{where} {key}", role, args, text)
                rep.command(inv)
                if is_room and key == "ExecStart" and inv.values.get("--server-id") != "room-1":
                    rep.error(where, "ExecStart: the instance name must be the server id (--server-id %i)")
                for var in split_vars:
                    for value in examples.get(var, []):
                        if value.strip():
                            rep.command(Invocation(f"{where} ${var} (from systemd/*.env.example)",
                                                        role, shlex.split(value), text))
        if not seen_tickroom:
            rep.error(where, "no ExecStart runs the tickroom binary")
        if len(rep.errors) == before:
            rep.ok(f"systemd  {where}: INI ok; Restart, LimitNOFILE, ExecStart flags, User, "
                   "EnvironmentFile, TimeoutStopSec, hardening ok")
    room_env = root / "systemd" / "room.env.example"
    if room_env.exists() and re.search(r"^\s*TICKROOM_KEYS=\S", room_env.read_text(), re.M):
        rep.error(rep.rel(room_env), "sets TICKROOM_KEYS: room servers get only TICKROOM_ROOM_KEYS")


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(value: str, where: str, rep: Report) -> list[str] | None:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        rep.error(where, f"use the JSON (exec) form, so SIGTERM reaches tickroom: {value[:60]}")
        return None
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        rep.error(where, "not a JSON list of strings")
        return None
    return parsed


def check_dockerfile(root: Path, rep: Report) -> None:
    path = root / "Dockerfile"
    where = rep.rel(path)
    if not path.exists():
        rep.error(where, "missing")
        return
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    if not re.search(r"not\s+built\s+in\s+ci", " ".join(header), re.I):
        rep.error(where, "the header comment must say it is not built in CI (\"NOT BUILT IN CI\")")
    ins = dockerfile_instructions(text)
    froms = [rest for word, rest in ins if word == "FROM"]
    if not froms or not re.match(r"rust:1-bookworm(\s+AS\s+\w+)?$", froms[0], re.I):
        rep.error(where, f"first stage must be FROM rust:1-bookworm, got {froms[:1]}")
    if len(froms) < 2 or froms[-1].split()[0] != "debian:bookworm-slim":
        rep.error(where, f"runtime stage must be FROM debian:bookworm-slim, got {froms[-1:]}")
    last_stage = max((i for i, (w, _) in enumerate(ins) if w == "FROM"), default=0)
    users = [rest for word, rest in ins[last_stage:] if word == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        rep.error(where, f"the runtime stage must switch to a non-root USER, got {users}")
    exposed = " ".join(rest for word, rest in ins if word == "EXPOSE").split()
    if not any(p.endswith("/udp") for p in exposed):
        rep.error(where, "EXPOSE has no /udp port (QUIC is UDP)")
    entry = [exec_form(rest, f"{where} ENTRYPOINT", rep) for word, rest in ins[last_stage:] if word == "ENTRYPOINT"]
    cmd = [exec_form(rest, f"{where} CMD", rep) for word, rest in ins[last_stage:] if word == "CMD"]
    entry = entry[-1] if entry else None
    cmd = cmd[-1] if cmd else []
    if not entry or os.path.basename(entry[0]) != "tickroom":
        rep.error(where, f"ENTRYPOINT must run the tickroom binary, got {entry}")
        return
    before = len(rep.errors)
    role, args = split_role(entry[1:] + (cmd or []))
    rep.command(Invocation(f"{where} ENTRYPOINT+CMD", role, args, text))
    if len(rep.errors) == before:
        rep.ok(f"docker   {where}: header, base images, non-root USER, UDP port, CMD flags ({role}) ok")


# ---------------------------------------------------------------------------------------------
# Markdown: `tickroom ...` commands in code


def shell_commands(line: str) -> list[list[str]]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError:
        return []
    commands, current = [], []
    for tok in tokens:
        if tok and all(ch in "();<>|&" for ch in tok):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        commands.append(current)
    return commands


def tickroom_commands(line: str) -> list[list[str]]:
    found = []
    for words in shell_commands(line):
        i = 0
        while i < len(words) and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i]) or words[i] in ("exec", "env", "$")):
            i += 1
        if i < len(words) and os.path.basename(words[i]) == "tickroom":
            found.append(words[i + 1:])
    return found


def check_markdown(root: Path, rep: Report) -> None:
    for path in sorted(root.rglob("*.md")):
        where = rep.rel(path)
        text = path.read_text()
        lines = text.splitlines()
        before, count = len(rep.errors), 0
        in_code, buf = False, ""
        candidates: list[tuple[int, str]] = []
        for no, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                in_code = not in_code
                buf = ""
                continue
            if in_code:
                if line.rstrip().endswith("\\"):
                    buf += line.rstrip()[:-1] + " "
                    continue
                candidates.append((no, buf + line))
                buf = ""
            else:
                # Inline code that is a command (`tickroom room --drain`), not a bare name.
                for span in re.findall(r"`([^`]+)`", line):
                    if len(span.split()) > 1:
                        candidates.append((no, span))
        for no, cmdline in candidates:
            for tokens in tickroom_commands(cmdline):
                role, args = split_role(tokens)
                count += 1
                rep.command(Invocation(f"{where}:{no}", role, args, text))
        if len(rep.errors) == before:
            rep.ok(f"markdown {where}: {count} tickroom command(s), flags ok")


# ---------------------------------------------------------------------------------------------
# Everything


def check_secrets_in_files(root: Path, rep: Report) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for m in re.finditer(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64,}(?![0-9A-Fa-f])", text):
            line = text.count("\n", 0, m.start()) + 1
            rep.error(f"{rep.rel(path)}:{line}", "looks like real key material (64+ hex digits): use a placeholder")
        if "BEGIN" in text and re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text):
            rep.error(rep.rel(path), "contains a PEM private key")


def run_checks(root: Path, helps: dict[str, dict[str, Flag]], collect: list | None = None) -> Report:
    rep = Report(root, helps, collect)
    docs = check_yaml_files(root, rep)
    check_k8s(docs, rep)
    check_systemd(root, rep)
    check_dockerfile(root, rep)
    check_markdown(root, rep)
    check_secrets_in_files(root, rep)
    return rep


def check_main(binary: str, root: Path) -> int:
    start = time.monotonic()
    try:
        helps = load_helps(binary)
    except HelpError as e:
        print(f"deploy/check.py: {e}", file=sys.stderr)
        return 2
    same = len({frozenset(f) - {"--version"} for r, f in helps.items() if r != "room-keys"}) == 1
    print(f"binary   {binary}: " + ", ".join(f"{r} {len(f)} flags" for r, f in helps.items())
          + ("; the three roles share one flag set, so role fit comes from this script's table" if same else ""))
    rep = run_checks(root, helps)
    for line in rep.checked:
        print(line)
    elapsed = time.monotonic() - start
    if rep.errors:
        print(f"\n{len(rep.errors)} problem(s) in {rep.rel(root)}:", file=sys.stderr)
        for e in rep.errors:
            print(f"  ERROR {e}", file=sys.stderr)
        return 1
    print(f"OK: {rep.invocations} tickroom command lines, {rep.flags} flags, all checks passed in {elapsed:.2f} s")
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: plant mistakes in a copy of deploy/ and demand that each is caught.


def find_binary(given: str | None) -> str | None:
    candidates = [given] if given else [os.environ.get("TICKROOM_BIN")] + [
        str(DEPLOY_DIR.parent / "target" / kind / "tickroom") for kind in ("debug", "release")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if given:
        sys.exit(f"deploy/check.py --self-test: {given} is not an executable file")
    return None


def stand_in_binary(tmp: Path, root: Path) -> str:
    """A fake `tickroom` whose --help lists the flags deploy/ uses (with clap's layout), for a
    self-test without a built binary: the planted flags are still unknown to it."""
    invocations: list[Invocation] = []
    run_checks(root, {}, collect=invocations)
    used: dict[str, bool] = {}  # flag -> takes a value
    for inv in invocations:
        for i, tok in enumerate(inv.args):
            if tok.startswith("--"):
                name, eq, _ = tok.partition("=")
                takes = bool(eq) or (i + 1 < len(inv.args) and not inv.args[i + 1].startswith("-"))
                used[name] = used.get(name, False) or takes
    lines = ["Usage: tickroom [OPTIONS]", "", "Options:"]
    for name, takes in sorted(used.items()):
        lines.append(f"      {name}{' <VALUE>' if takes else ''}")
        lines.append("          " + ("Room role: " if name == "--drain" else "") + "stand-in")
        lines.append("")
    lines += ["  -h, --help", "          Print help"]
    script = tmp / "tickroom"
    script.write_text("#!/bin/sh\ncat <<'HELP'\n" + "\n".join(lines) + "\nHELP\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def edit_yaml(path: Path, kind: str, fn) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    hit = False
    for d in docs:
        if d and d.get("kind") == kind:
            fn(d)
            hit = True
    assert hit, f"self-test fixture: no {kind} in {path}"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def first_container(d: dict) -> dict:
    return d["spec"]["template"]["spec"]["containers"][0]


def sub(path: Path, pattern: str, repl: str) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
    assert n == 1, f"self-test fixture: {pattern!r} not found in {path}"
    path.write_text(new)


def self_test(binary_arg: str | None) -> int:
    start = time.monotonic()
    binary = find_binary(binary_arg)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="tickroom-deploy-selftest-") as tmpdir:
        tmp = Path(tmpdir)
        if binary is None:
            binary = stand_in_binary(tmp, DEPLOY_DIR)
            print("self-test: no tickroom binary (target/debug, target/release, $TICKROOM_BIN): "
                  "using a stand-in whose --help lists the flags deploy/ uses")
        try:
            helps = load_helps(binary)
        except HelpError as e:
            print(f"self-test: {e}", file=sys.stderr)
            return 2

        def fresh() -> Path:
            root = tmp / "deploy"
            if root.exists():
                shutil.rmtree(root)
            shutil.copytree(DEPLOY_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
            return root

        k8s_room = lambda r: r / "k8s" / "room.yaml"  # noqa: E731
        k8s_gw = lambda r: r / "k8s" / "gateway.yaml"  # noqa: E731
        cases = [
            ("a made-up flag in the room StatefulSet's args",
             lambda r: edit_yaml(k8s_room(r), "StatefulSet", lambda d: first_container(d)["args"].append(SELF_TEST_FLAG)),
             SELF_TEST_FLAG),
            ("a made-up flag in the gateway unit's ExecStart",
             lambda r: sub(r / "systemd" / "tickroom-gateway.service", r"tickroom gateway \\",
                           f"tickroom gateway {SELF_TEST_FLAG} \\\\"),
             SELF_TEST_FLAG),
            ("a made-up flag in the Dockerfile's CMD",
             lambda r: sub(r / "Dockerfile", r'^CMD \["', f'CMD ["{SELF_TEST_FLAG}", "'),
             SELF_TEST_FLAG),
            ("a made-up flag in a README's tickroom command",
             lambda r: (r / "k8s" / "README.md").write_text(
                 (r / "k8s" / "README.md").read_text() + f"\n```sh\ntickroom room {SELF_TEST_FLAG}\n```\n"),
             SELF_TEST_FLAG),
            ("a room-only flag (--drain) on the gateway",
             lambda r: edit_yaml(k8s_gw(r), "Deployment", lambda d: first_container(d)["args"].append("--drain")),
             "--drain in the gateway role"),
            ("the QUIC port without protocol UDP",
             lambda r: edit_yaml(k8s_room(r), "StatefulSet", lambda d: [
                 p.pop("protocol") for p in first_container(d)["ports"] if p["name"] == "quic"]),
             "explicit protocol"),
            ("--insecure-plaintext on the gateway with no TLS-terminating Ingress",
             lambda r: edit_yaml(k8s_gw(r), "Deployment", lambda d: first_container(d).__setitem__(
                 "args", [a for a in first_container(d)["args"] if not a.startswith(("--tls-", "/etc/tickroom/tls/"))]
                 + ["--insecure-plaintext"])),
             "no Ingress with spec.tls"),
            ("a container without resources",
             lambda r: edit_yaml(k8s_gw(r), "Deployment", lambda d: first_container(d).pop("resources")),
             "resources.requests.cpu missing"),
            ("a container without a readiness probe",
             lambda r: edit_yaml(k8s_room(r), "StatefulSet", lambda d: first_container(d).pop("readinessProbe")),
             "no readinessProbe"),
            ("a document without metadata.name",
             lambda r: edit_yaml(r / "k8s" / "redis.yaml", "Service", lambda d: d["metadata"].pop("name")),
             "missing metadata.name"),
            ("YAML that does not parse",
             lambda r: (r / "k8s" / "broken.yaml").write_text("kind: [unclosed\n"),
             "YAML does not parse"),
            ("a room unit without LimitNOFILE",
             lambda r: sub(r / "systemd" / "tickroom-room@.service", r"^LimitNOFILE=.*\n", ""),
             "no LimitNOFILE"),
            ("a room server given the gateways' key ring",
             lambda r: edit_yaml(k8s_room(r), "StatefulSet", lambda d: first_container(d)["env"].append(
                 {"name": "TICKROOM_KEYS", "valueFrom": {"secretKeyRef": {"name": "tickroom-gateway-keys", "key": "TICKROOM_KEYS"}}})),
             "gets the gateways' key ring"),
            ("a listener flag that disagrees with its container port",
             lambda r: edit_yaml(k8s_room(r), "StatefulSet", lambda d: first_container(d).__setitem__(
                 "args", [("0.0.0.0:7799" if a == "0.0.0.0:7702" else a) for a in first_container(d)["args"]])),
             "--quic listens on 7799"),
            ("real-looking key material in an env file example",
             lambda r: sub(r / "systemd" / "gateway.env.example", r"1:REPLACE_WITH_64_HEX_DIGITS", "1:" + "ab" * 32),
             "64+ hex digits"),
        ]
        root = fresh()
        rep = run_checks(root, helps)
        if rep.errors:
            failures += 1
            print("FAIL control: the unmodified deploy/ must pass, got:\n  " + "\n  ".join(rep.errors))
        else:
            print("ok   control: the unmodified copy of deploy/ passes")
        for title, mutate, expect in cases:
            root = fresh()
            mutate(root)
            rep = run_checks(root, helps)
            hits = [e for e in rep.errors if expect in e]
            if hits:
                print(f"ok   caught {title}: {hits[0]}")
            else:
                failures += 1
                print(f"FAIL missed {title}: expected an error containing {expect!r}, got {rep.errors or 'none'}")
        # End to end: the command line exits non-zero and names the flag.
        root = fresh()
        cases[0][1](root)
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--deploy-dir", str(root), binary],
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 1 and SELF_TEST_FLAG in out.stderr:
            print(f"ok   `check.py --deploy-dir <copy with a made-up flag> BINARY` exits 1 and names {SELF_TEST_FLAG}")
        else:
            failures += 1
            print(f"FAIL `check.py` on a copy with a made-up flag exited {out.returncode}; stderr: {out.stderr.strip()[:500]}")
    total = len(cases) + 2
    print(f"self-test: {total - failures} passed, {failures} failed ({time.monotonic() - start:.2f} s)")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", help="the tickroom binary to take --help from (e.g. target/debug/tickroom)")
    ap.add_argument("--self-test", action="store_true",
                    help="plant mistakes in a temporary copy of deploy/ and check that each is caught")
    ap.add_argument("--deploy-dir", default=str(DEPLOY_DIR), help="the directory to check (default: this script's)")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.binary)
    if not a.binary:
        ap.error("give the tickroom binary, e.g. python3 deploy/check.py target/debug/tickroom")
    return check_main(a.binary, Path(a.deploy_dir).resolve())


if __name__ == "__main__":
    sys.exit(main())
