"""`recapd worker` as a real process, for the cluster tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Short intervals so failures are detected and recovered within seconds.
FAST_JOBS = {
    "RECAPD_JOBS__POLL_INTERVAL_SECONDS": "0.5",
    "RECAPD_JOBS__HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "RECAPD_JOBS__WEDGED_JOB_TIMEOUT_SECONDS": "3",
    "RECAPD_JOBS__LEASE_TTL_SECONDS": "2.0",
    "RECAPD_JOBS__LEASE_RENEW_INTERVAL_SECONDS": "0.4",
    "RECAPD_JOBS__MAX_ATTEMPTS": "20",
}


class WorkerProcess:
    """One `recapd worker --node-id NODE` with its output in `log_dir/NODE.log`."""

    def __init__(
        self,
        url: str,
        node_id: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        extensions: Sequence[str] = (),
    ) -> None:
        self.node_id = node_id
        full = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
        full.update(FAST_JOBS)
        full.update(RECAPD_DATABASE_URL=url, PYTHONPATH=str(ROOT))
        full.update(env or {})
        args = [sys.executable, "-m", "recapd", "worker", "--node-id", node_id]
        for ext in extensions:
            args += ["--extension", ext]
        self.log = (log_dir / f"{node_id}.log").open("w")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """SIGKILL: the node dies at whatever line it was on."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode
