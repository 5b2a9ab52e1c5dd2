#!/usr/bin/env python3
"""Regenerates crates/telemetry/src/cost/prices.json, Gatecast's shipped price table.

The source is the price file the `litellm` Python wheel ships
(litellm/model_prices_and_context_window_backup.json, MIT licensed). The wheel is downloaded
into a throwaway directory and the file is read straight out of the wheel's zip: nothing of it
is installed or run. Run by hand to refresh the table (CI does not):

    python3 scripts/update-prices.py            # latest litellm
    python3 scripts/update-prices.py 1.110.2    # a given version

Our format (docs/cost.md): a header (source, version, generated date, unit) and one entry per
chat, completion or embedding model, prices in USD per million tokens:

    "gpt-4o-mini": {"provider": "openai", "mode": "chat", "since": "2026-12-04",
                    "input": 0.15, "output": 0.6, "cache_read": 0.075}

with optional "cache_write", "reasoning" (only when it differs from "output") and "tiers"
([{"above": 200000, "input": ..., ...}], the rates once the prompt exceeds "above" tokens).
"since" is the date this table first saw the entry's current prices: a refresh keeps an
unchanged entry's date and stamps changed or new ones with today's.
"""

import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

SOURCE_FILE = "litellm/model_prices_and_context_window_backup.json"
OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "telemetry", "src", "cost", "prices.json",
)
MODES = {"chat", "completion", "embedding"}
# litellm key -> our field. Batch, priority, flex and 1-hour-cache variants are other
# products than the plain call the gateway makes, so they are left out.
RATES = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_reasoning_token": "reasoning",
}
TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost)_above_(\d+)k_tokens$"
)


def per_mtok(usd_per_token):
    # Twelve significant digits: the source's figures are short decimals, and this drops the
    # binary noise of the multiplication (1.5e-07 * 1e6 = 0.15000000000000002).
    return float(f"{usd_per_token * 1e6:.12g}")


def is_rate(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def download(version, into):
    spec = f"litellm=={version}" if version else "litellm"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--quiet", "-d", into, spec],
        check=True,
    )
    wheels = glob.glob(os.path.join(into, "litellm-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one litellm wheel in {into}, found {wheels}")
    return wheels[0]


def convert(name, spec, today, previous):
    entry = {}
    provider = spec.get("litellm_provider")
    if isinstance(provider, str):
        entry["provider"] = provider
    entry["mode"] = spec["mode"]
    rates = {}
    for key, field in RATES.items():
        if is_rate(spec.get(key)):
            rates[field] = per_mtok(spec[key])
    if "input" not in rates or "output" not in rates:
        return None
    if rates.get("reasoning") == rates["output"]:
        del rates["reasoning"]
    tiers = {}
    for key, value in spec.items():
        m = TIER_KEY.match(key)
        if m and is_rate(value):
            tiers.setdefault(int(m.group(2)) * 1000, {})[RATES[m.group(1)]] = per_mtok(value)
    entry.update(rates)
    if tiers:
        entry["tiers"] = [dict(above=above, **tiers[above]) for above in sorted(tiers)]
    old = previous.get(name)
    unchanged = old is not None and {k: v for k, v in old.items() if k != "since"} == entry
    entry = {"since": old["since"] if unchanged else today, **entry}
    return entry


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else None
    today = datetime.date.today().isoformat()
    previous = {}
    if os.path.exists(OUT):
        with open(OUT) as f:
            previous = json.load(f).get("models", {})
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download(version, tmp)
        with zipfile.ZipFile(wheel) as z:
            source = json.loads(z.read(SOURCE_FILE))
        wheel_version = os.path.basename(wheel).split("-")[1]
    models = {}
    for name, spec in sorted(source.items()):
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode") not in MODES:
            continue
        entry = convert(name, spec, today, previous)
        if entry is not None:
            models[name] = entry
    header = {
        "source": f"litellm {wheel_version}, {SOURCE_FILE}",
        "version": wheel_version,
        "generated": today,
        "unit": "USD per million tokens",
        "generator": "scripts/update-prices.py",
    }
    # One model a line: a refresh's diff shows exactly which prices moved.
    with open(OUT, "w") as f:
        f.write("{\n")
        for key, value in header.items():
            f.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
        f.write('  "models": {\n')
        lines = [f"    {json.dumps(n)}: {json.dumps(e, separators=(',', ':'))}"
                 for n, e in models.items()]
        f.write(",\n".join(lines))
        f.write("\n  }\n}\n")
    print(f"wrote {len(models)} models from litellm {wheel_version} to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
