"""``datamind-ext doctor``: versions, devices, and every component registered upstream.

Registrations are read back from verl's and LLaMA-Factory's own registries, each in a fresh
subprocess that imports the framework exactly as a training process does. Exit code 0 only if
every expected component is registered and nothing failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import platform
import subprocess
import sys
from typing import Any

PACKAGES = ("torch", "verl", "llamafactory", "transformers", "ray", "vllm", "sglang", "pandas", "pydantic")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the environment and the plugin registrations")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    p.set_defaults(handler=run)


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _devices() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} CUDA GPU(s): " + ", ".join(names)
    return "no GPU (CPU only)"


def _read_back(module: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"{module} exited {proc.returncode}: {last}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": f"{module} printed no JSON: {proc.stdout[-200:]!r}"}


def _isolation() -> dict[str, Any]:
    try:
        from datamind_ext.interpreter import isolation_report
    except ImportError:
        return {"error": "datamind_ext.interpreter.isolation_report is not available"}
    return isolation_report()


def _layers(facts: dict[str, Any]) -> dict[str, str]:
    from datamind_ext.interpreter.isolation import layers

    return layers(facts)


def collect() -> dict[str, Any]:
    out = {
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "devices": _devices(),
        "verl": _read_back("datamind_ext.integrations.verl.inspect"),
        "llamafactory": _read_back("datamind_ext.integrations.llamafactory.inspect"),
        "interpreter_isolation": _isolation(),
    }
    out["interpreter_layers"] = _layers(out["interpreter_isolation"])
    return out


def problems(report: dict[str, Any]) -> list[str]:
    out = []
    for fw in ("verl", "llamafactory"):
        r = report[fw]
        if "error" in r:
            out.append(f"{fw}: {r['error']}")
            continue
        out += [f"{fw}: {m}: {e}" for m, e in r["failures"].items()]
        if r["expected_modules"] and not any(r["registered"].values()):
            out.append(f"{fw}: components {r['expected_modules']} are expected but none is registered")
        for kind, entries in r["registered"].items():
            out += [f"{fw}: {kind} registry unreadable: {v}" for k, v in entries.items() if k == "<unreadable>"]
    return out


def run(args: argparse.Namespace) -> int:
    report = collect()
    bad = problems(report)
    if args.json:
        print(json.dumps({**report, "problems": bad}, indent=2))
        return 1 if bad else 0
    print(f"python        {report['python']}")
    for p, v in report["packages"].items():
        print(f"{p:<13} {v}")
    print(f"devices       {report['devices']}")
    for fw in ("verl", "llamafactory"):
        r = report[fw]
        print(f"\nregistered into {fw} (read back from its registries):")
        if "error" in r:
            print(f"  ERROR {r['error']}")
            continue
        n = 0
        for kind, entries in r["registered"].items():
            for name, target in entries.items():
                print(f"  {kind:<16} {name:<28} -> {target}")
                n += 1
        if n == 0:
            print("  (nothing registered yet)")
    print("\ninterpreter isolation:")
    for k, v in report["interpreter_isolation"].items():
        print(f"  {k:<16} {v}")
    print("\ninterpreter layers in force (measured in a probe session):")
    for k, v in report["interpreter_layers"].items():
        print(f"  {k:<18} {v}")
    if bad:
        print("\nPROBLEMS:")
        for b in bad:
            print(f"  - {b}")
        return 1
    print("\nall registrations live")
    return 0
