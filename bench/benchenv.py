"""The bench environment: bench/.venv, with recapd installed editable and bench/requirements.txt
(procrastinate, rouge-score, py-spy, ...), so recapd's own .venv never gains them.

Each bench script calls `enter(__file__)` before its third-party imports: it creates or refreshes
the venv when needed and re-executes the script inside it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = BENCH / ".venv"
OUT = BENCH / "out"
REQUIREMENTS = BENCH / "requirements.txt"


def enter(script: str) -> None:
    """Run `script` inside bench/.venv (creating or refreshing it first)."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-installed"
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    want = digest.hexdigest()
    if not python.exists():
        print(f"bench: creating {VENV.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text().strip() != want:
        print(
            "bench: installing recapd and the bench tools into it ...", file=sys.stderr, flush=True
        )
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", str(ROOT), "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(want + "\n")
    os.execv(str(python), [str(python), str(Path(script).resolve()), *sys.argv[1:]])
