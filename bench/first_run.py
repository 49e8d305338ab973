"""A newcomer's first run: `./scripts/run` from a fresh clone until it serves, and how fast the
command starts.

    python3 bench/first_run.py [--runs 2] [--keep]

Clones the repository's HEAD (commit first) into a scratch directory per run, runs
`./scripts/run --port 0` there and times, from its start: the end of the install (the demo's
first line), the end of the demo, and the "recapd serving at" line; then stops it with SIGTERM.
The first run warms pip's cache, so the later ones are what "a warm package cache" means. Then,
in the last clone, `recapd version`, `recapd --help` and `recapd schedules list --user demo`
(best of 5), and the size of `.venv`. Needs only Python and git; writes bench/out/first-run.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def _clone(into: Path) -> Path:
    repo = into / "recapd"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    return repo


def _first_run(repo: Path, timeout_s: float = 600) -> dict[str, float]:
    """Seconds from the start of ./scripts/run to each milestone of its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(
        ["./scripts/run", "--port", "0"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    marks: dict[str, float] = {}
    wanted: dict[str, Callable[[str], bool]] = {
        "installed": lambda line: line.startswith("channel "),
        "demo loaded": lambda line: line.startswith("Sign in with the demo token"),
        "serving": lambda line: line.startswith("recapd serving at"),
    }
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    tail: list[str] = []
    try:
        while "serving" not in marks:
            if time.monotonic() - start > timeout_s:
                raise RuntimeError("scripts/run did not serve in time:\n" + "".join(tail))
            if not sel.select(timeout=1):
                continue
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("scripts/run ended:\n" + "".join(tail))
            tail = [*tail[-40:], line]
            for name, matches in wanted.items():
                if name not in marks and matches(line):
                    marks[name] = time.monotonic() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole tree (setup, pip, demo, serve until stopped): what a busy machine
    # cannot inflate the way it inflates wall time.
    marks["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return marks


def _best_of(repo: Path, args: list[str], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(repo / ".venv/bin/recapd"), *args], cwd=repo, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="fresh clones to run (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = []
    repo = None
    scratch = []
    try:
        for i in range(args.runs):
            where = Path(tempfile.mkdtemp(prefix="recapd-first-run-"))
            scratch.append(where)
            repo = _clone(where)
            marks = _first_run(repo)
            rows.append(marks)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in marks.items()))
        assert repo is not None
        cli = {
            "recapd version": _best_of(repo, ["version"]),
            "recapd --help": _best_of(repo, ["--help"]),
            "recapd schedules list --user demo": _best_of(
                repo, ["schedules", "list", "--user", "demo"]
            ),
        }
        venv_mb = _du(repo / ".venv") / 1e6
    finally:
        if not args.keep:
            for where in scratch:
                shutil.rmtree(where, ignore_errors=True)
    lines = [
        "# First run",
        "",
        f"Load average at the start: {load:.1f} ({os.cpu_count()} CPUs), "
        f"Python {sys.version.split()[0]}.",
        "",
        "| run | install done (s) | demo loaded (s) | serving (s) | CPU, all processes (s) |",
        "|---|---|---|---|---|",
    ]
    for i, marks in enumerate(rows, 1):
        cache = "cold or warm" if i == 1 else "warm cache"
        lines.append(
            f"| {i} ({cache}) | {marks['installed']:.1f} | {marks['demo loaded']:.1f} "
            f"| {marks['serving']:.1f} | {marks['cpu']:.1f} |"
        )
    lines += [
        "",
        f".venv after `./scripts/run`: {venv_mb:.0f} MB",
        "",
        "| command | best of 5 (s) |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {secs:.2f} |" for name, secs in cli.items()]
    report = "\n".join(lines) + "\n"
    (OUT / "first-run.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
