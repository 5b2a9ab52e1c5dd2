#!/usr/bin/env python3
"""Checks the deployment files as far as this machine can without Docker or Kubernetes.

- every YAML file parses;
- every path that docker-compose.yml and deploy/Dockerfile reference exists;
- the compose config and the Helm chart's config pass `gatecast check-config`;
- every host the configs and the collector talk to is a compose service;
- every `.Values.x.y` the Helm templates use is defined in values.yaml;
- the Helm grace period covers the config's whole shutdown (`server.shutdown_timeout_ms`).

Usage: scripts/validate-deploy.py PATH_TO_GATECAST_BINARY
"""
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from urllib.parse import urlparse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def ok(msg):
    print(f"ok   {msg}")


def load_yaml(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return yaml.safe_load(f)


def check_config(binary, text, env, label):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
        run_env.update(env)
        out = subprocess.run([binary, "check-config", "--config", path], env=run_env,
                             capture_output=True, text=True)
        if out.returncode == 0:
            ok(f"{label}: gatecast check-config passes")
        else:
            fail(f"{label}: gatecast check-config: {out.stderr.strip()}")
    finally:
        os.unlink(path)


def hosts_in(text):
    return {urlparse(u).hostname for u in re.findall(r'"((?:https?|postgres)://[^"]+)"', text)}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]

    compose = load_yaml("docker-compose.yml")
    services = set(compose["services"])
    ok(f"docker-compose.yml parses: services {sorted(services)}")
    for rel in ["deploy/otel-collector.yaml", "deploy/helm/gatecast/Chart.yaml",
                "deploy/helm/gatecast/values.yaml"]:
        load_yaml(rel)
        ok(f"{rel} parses")

    gatecast = compose["services"]["gatecast"]
    if gatecast.get("deploy", {}).get("replicas", 1) < 2:
        fail("compose: gatecast should run 2 replicas")
    build = gatecast["build"]
    for rel in [build["context"], os.path.join(build["context"], build["dockerfile"])]:
        if not os.path.exists(os.path.join(ROOT, rel)):
            fail(f"compose: build path {rel} does not exist")
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not os.path.exists(os.path.join(ROOT, source)):
                fail(f"compose: volume source {source} does not exist")
        for dep in service.get("depends_on", {}):
            if dep not in services:
                fail(f"compose: depends_on {dep} is not a service")
    ok("compose: build context, Dockerfile and volume sources exist")

    with open(os.path.join(ROOT, "deploy/Dockerfile")) as f:
        dockerfile = f.read()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for part in src.split():
            if not os.path.exists(os.path.join(ROOT, part)):
                fail(f"Dockerfile: COPY source {part} does not exist")
    if not re.search(r"^USER (?!root)", dockerfile, re.M):
        fail("Dockerfile: the runtime stage must not run as root")
    if "HEALTHCHECK" not in dockerfile:
        fail("Dockerfile: no HEALTHCHECK")
    ok("Dockerfile: COPY sources exist, non-root user, healthcheck")

    env = gatecast.get("environment", {})
    if not str(env.get("GATECAST_SECRET_KEY", "")).startswith("${GATECAST_SECRET_KEY:?"):
        fail("compose: replicas must share GATECAST_SECRET_KEY; require it with ${GATECAST_SECRET_KEY:?...}")
    config_mount = next(v for v in gatecast["volumes"] if "gatecast.toml" in v or ".toml" in v)
    with open(os.path.join(ROOT, config_mount.split(":")[0])) as f:
        compose_config = f.read()
    db_url = env["GATECAST_DATABASE_URL"]
    check_config(binary, compose_config, {"GATECAST_DATABASE_URL": db_url}, "compose config")
    referenced = hosts_in(compose_config) | {urlparse(db_url).hostname}
    missing = referenced - services
    if missing:
        fail(f"compose: the config talks to {sorted(missing)}, which are not compose services")
    else:
        ok(f"compose: the config's hosts {sorted(referenced)} are compose services")
    collector = load_yaml("deploy/otel-collector.yaml")
    for name, exporter in collector["exporters"].items():
        endpoint = (exporter or {}).get("endpoint")
        if endpoint:
            host = endpoint.split("://")[-1].split(":")[0]
            if host not in services:
                fail(f"collector exporter {name} sends to {host}, not a compose service")
    ok("collector: exporters point at compose services")
    shutdown_ms = tomllib.loads(compose_config).get("server", {}).get("shutdown_timeout_ms", 30000)
    stop_grace = re.fullmatch(r"(\d+)s", str(gatecast.get("stop_grace_period", "10s")))
    if not stop_grace or int(stop_grace.group(1)) < -(-shutdown_ms // 1000) + 1:
        fail(f"compose: stop_grace_period {gatecast.get('stop_grace_period', '10s (default)')} is shorter than shutdown_timeout_ms {shutdown_ms} and a second")
    else:
        ok(f"compose: stop_grace_period covers shutdown_timeout_ms {shutdown_ms}")

    values = load_yaml("deploy/helm/gatecast/values.yaml")
    helm_env = {e["name"]: "postgres://u:p@db/gatecast" if "DATABASE" in e["name"] else "x"
                for e in values.get("secretEnv", [])}
    check_config(binary, values["config"], helm_env, "helm values.config")
    templates = os.path.join(ROOT, "deploy/helm/gatecast/templates")
    for name in sorted(os.listdir(templates)):
        with open(os.path.join(templates, name)) as f:
            text = f.read()
        for ref in set(re.findall(r"\.Values((?:\.\w+)+)", text)):
            node = values
            for key in ref.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    fail(f"helm {name}: .Values{ref} is not defined in values.yaml")
                    break
                node = node[key]
    with open(os.path.join(templates, "deployment.yaml")) as f:
        deployment = f.read()
    for probe, path in [("livenessProbe", "/health"), ("readinessProbe", "/ready")]:
        if not re.search(probe + r":\s*\n\s*httpGet:\s*\n\s*path: " + re.escape(path), deployment):
            fail(f"helm deployment: {probe} should GET {path}")
    ok("helm: template values defined, probes on /health and /ready")

    # The gateway's shutdown is bounded by shutdown_timeout_ms (requests and flush together);
    # Kubernetes must not kill it sooner. A second covers the process's exit; no preStop hook.
    helm_config = tomllib.loads(values["config"])
    shutdown_ms = helm_config.get("server", {}).get("shutdown_timeout_ms", 30000)
    grace = values.get("terminationGracePeriodSeconds")
    if "preStop" in deployment:
        fail("helm deployment: a preStop hook adds to the shutdown; count it in terminationGracePeriodSeconds and here")
    if not isinstance(grace, int) or grace < -(-shutdown_ms // 1000) + 1:
        fail(f"helm: terminationGracePeriodSeconds {grace} is shorter than shutdown_timeout_ms {shutdown_ms} and a second")
    else:
        ok(f"helm: terminationGracePeriodSeconds {grace} covers shutdown_timeout_ms {shutdown_ms}")

    if failures:
        print(f"{len(failures)} problem(s) in the deployment files")
        sys.exit(1)
    print("deployment files: all checks passed")


if __name__ == "__main__":
    main()
