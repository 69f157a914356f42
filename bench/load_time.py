"""How long ``%load_ext chatmagic`` takes, next to ``%load_ext jupyter_ai_magics``.

Both extensions are loaded by the same interpreter with the same IPython: a separate
venv, ``bench/.venv-ai``, holds jupyter-ai-magics and chatmagic (installed editable from
this checkout). jupyter-ai-magics never goes into the project's own ``.venv``, where it
could change the versions of shared dependencies. The venv is created on the first run
(this needs PyPI and takes a few minutes); ``--python PATH`` uses another interpreter
that has both packages.

Every sample is a fresh subprocess that builds an IPython shell
(``InteractiveShell.instance()``) and runs ``%load_ext NAME`` once. The runs of the
two extensions alternate, so a noisy neighbour hurts both alike. Figures:

- ``load_ext``: the ``%load_ext`` call alone (the shell already exists);
- ``import→ready``: from the child's first statement (before ``import IPython``) until
  the extension is loaded: IPython's import, the shell, and the extension;
- ``process``: the whole subprocess as the parent sees it (interpreter start-up and exit too).

Then, from one more run each, which modules the ``%load_ext`` call imported: their
count, and which of a list of known heavy packages were among them.

    .venv/bin/python bench/load_time.py [--repeat 7] [--python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv-ai"

EXTENSIONS = ("chatmagic", "jupyter_ai_magics")
#: the magic each extension must have registered for a sample to count
MAGIC = {"chatmagic": "chat", "jupyter_ai_magics": "ai"}
#: top-level packages worth naming when an extension pulls them in
HEAVY = (
    "aiohttp",
    "curl_cffi",
    "httpx",
    "requests",
    "openai",
    "anthropic",
    "langchain",
    "langchain_core",
    "langchain_community",
    "pydantic",
    "pydantic_core",
    "jupyter_ai_magics",
    "markdown_it",
    "nh3",
    "ipywidgets",
    "numpy",
    "pandas",
    "tiktoken",
    "jinja2",
    "yaml",
    "click",
    "importlib_metadata",
    "typing_extensions",
    "sqlalchemy",
    "tenacity",
    "jsonpatch",
    "langsmith",
    "orjson",
    "zmq",
    "jupyter_client",
    "jupyter_core",
    "traitlets",
)

# Runs in the child. Prints one JSON line.
CHILD = r"""
import time
t_start = time.perf_counter()
import sys, json, io, contextlib
ext = sys.argv[1]
import IPython
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t_shell = time.perf_counter()
before = set(sys.modules)
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    t0 = time.perf_counter()
    ip.run_line_magic("load_ext", ext)
    t1 = time.perf_counter()
new = sorted(set(sys.modules) - before)
magics = ip.magics_manager.magics
print(json.dumps({
    "load_ext": t1 - t0,
    "import_to_ready": t1 - t_start,
    "shell": t_shell - t_start,
    "new_modules": new,
    "cell_magics": sorted(magics["cell"]),
    "line_magics": sorted(magics["line"]),
    "output": out.getvalue()[-2000:],
    "ipython": IPython.__version__,
    "python": sys.version.split()[0],
    "executable": sys.executable,
}))
"""

VERSIONS = r"""
import json, sys
from importlib.metadata import version, PackageNotFoundError
out = {"python": sys.version.split()[0], "executable": sys.executable}
for name in ("ipython", "chatmagic", "jupyter-ai-magics", "langchain", "langchain-core", "aiohttp", "pydantic"):
    try:
        out[name] = version(name)
    except PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def ensure_venv() -> Path:
    """The bench venv's python; created with jupyter-ai-magics and chatmagic if missing."""
    python = VENV / "bin" / "python"
    if python.exists():
        ok = (
            subprocess.run(
                [str(python), "-c", "import jupyter_ai_magics, chatmagic"], check=False, capture_output=True
            ).returncode
            == 0
        )
        if ok:
            return python
        print(f"{VENV} exists but lacks a package: installing into it.")
    else:
        print(f"First run: creating {VENV} with jupyter-ai-magics and chatmagic (needs PyPI, a few minutes).")
        # the base interpreter, not this venv's: the new venv must not inherit .venv's packages
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["jupyter-ai-magics", "-e", str(REPO)], check=True)
    print("Venv ready.\n")
    return python


def run_child(python: str, ext: str, env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", CHILD, ext], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"loading {ext} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if MAGIC[ext] not in result["cell_magics"]:
        raise SystemExit(f"%load_ext {ext} did not register %%{MAGIC[ext]}:\n{result['output']}")
    result["process"] = wall
    return result


def ms(x: float) -> str:
    return f"{x * 1000:8.1f}"


def top_level(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="Samples per extension (default 7).")
    parser.add_argument("--python", help="Interpreter with both jupyter-ai-magics and chatmagic installed.")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="chatmagic only, with this interpreter (no bench/.venv-ai, so no ratio).",
    )
    args = parser.parse_args()

    global EXTENSIONS
    if args.alone:
        EXTENSIONS = ("chatmagic",)
    python = args.python or (sys.executable if args.alone else str(ensure_venv()))
    check = subprocess.run(
        [python, "-c", "import " + ", ".join(EXTENSIONS)], check=False, capture_output=True, text=True
    )
    if check.returncode != 0:
        raise SystemExit(
            f"{python} cannot import {' and '.join(EXTENSIONS)}: {check.stderr.strip().splitlines()[-1]}"
        )
    versions = json.loads(
        subprocess.run([python, "-c", VERSIONS], capture_output=True, text=True, check=True).stdout
    )
    # a private IPython profile, so the user's startup files and config do not run
    ipydir = tempfile.mkdtemp(prefix="bench-ipython-")
    env = dict(os.environ, IPYTHONDIR=ipydir, PYTHONDONTWRITEBYTECODE="0")
    # proxies would be no use here: nothing leaves 127.0.0.1
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(key, None)

    print(
        f"interpreter: {versions['executable']} (Python {versions['python']}, IPython {versions['ipython']})"
    )
    print(
        f"chatmagic {versions['chatmagic']}, jupyter-ai-magics {versions['jupyter-ai-magics']}, "
        f"langchain-core {versions['langchain-core']}, aiohttp {versions['aiohttp']}, "
        f"pydantic {versions['pydantic']}"
    )
    print(
        f"{args.repeat} samples per extension, each a fresh process; one warm-up run each first "
        "(fills the bytecode caches).\n"
    )

    for ext in EXTENSIONS:  # warm-up, not counted; also the module census
        census = {ext: run_child(python, ext, env)}
        globals().setdefault("CENSUS", {}).update(census)

    samples: dict[str, list[dict]] = {ext: [] for ext in EXTENSIONS}
    for _ in range(args.repeat):
        for ext in EXTENSIONS:
            samples[ext].append(run_child(python, ext, env))

    head = f"{'extension':<20} {'figure':<14} {'median ms':>9} {'min ms':>8} {'max ms':>8}"
    print(head)
    print("-" * len(head))
    for ext in EXTENSIONS:
        for key, label in (
            ("load_ext", "load_ext"),
            ("import_to_ready", "import→ready"),
            ("process", "process"),
        ):
            values = [s[key] for s in samples[ext]]
            print(
                f"{ext:<20} {label:<14} {ms(statistics.median(values)):>9} {ms(min(values)):>8} "
                f"{ms(max(values)):>8}"
            )
    shell = [s["shell"] for ext in EXTENSIONS for s in samples[ext]]
    print(
        f"{'(both)':<20} {'IPython+shell':<14} {ms(statistics.median(shell)):>9} {ms(min(shell)):>8} "
        f"{ms(max(shell)):>8}   (part of import→ready, same for both)"
    )
    if "jupyter_ai_magics" in samples:
        a = statistics.median(s["load_ext"] for s in samples["chatmagic"])
        b = statistics.median(s["load_ext"] for s in samples["jupyter_ai_magics"])
        print(f"\nload_ext median: jupyter_ai_magics / chatmagic = {b / a:.1f}x ({a / b:.3f})")

    census = globals()["CENSUS"]
    print("\nModules imported by the %load_ext call (one run each):")
    for ext in EXTENSIONS:
        new = census[ext]["new_modules"]
        tops = top_level(new)
        heavy = [h for h in HEAVY if h in tops]
        print(f"  {ext}: {len(new)} modules from {len(tops)} top-level packages")
        print(f"    notable (list in this script): {', '.join(heavy) if heavy else 'none'}")
        others = [t for t in tops if t not in HEAVY and not t.startswith("_")]
        print(f"    other packages: {', '.join(others) if others else 'none'}")
        out = census[ext]["output"].strip()
        if out:
            print(f"    printed while loading: {out.splitlines()[-1][:150]}")


if __name__ == "__main__":
    main()
