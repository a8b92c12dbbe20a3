"""The local single-node SLURM test cluster (tests/slurm/cluster.sh) as a pytest fixture.

`slurm_cluster` starts the cluster once per session and stops it at the end, unless it was
already running when the session began (then it is left running for whoever started it).
Set THINKCOST_SLURM_KEEP=1 to leave it running anyway. The state lives under
THINKCOST_SLURM_DIR (default /tmp/thinkcost-slurm); slurm.conf is /etc/slurm/slurm.conf.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).resolve().parent / "cluster.sh"
SLURM_COMMANDS = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct")
# Generous: the first start may apt-get install slurm, munge and MariaDB.
START_TIMEOUT_S = 900


@dataclass(frozen=True)
class SlurmCluster:
    base_dir: Path
    script: Path
    partition: str = "debug"
    account: str = "thinkcost"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "log"


def _base_dir() -> Path:
    return Path(os.environ.get("THINKCOST_SLURM_DIR", "/tmp/thinkcost-slurm"))


def _cluster(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _skip_reason() -> str | None:
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the SLURM test cluster needs root (daemons, /etc/slurm, apt-get)"
    installed = all(shutil.which(c) for c in SLURM_COMMANDS)
    if not installed and shutil.which("apt-get") is None:
        return "slurm/munge/mariadb are not installed and apt-get is unavailable"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)

    was_running = _cluster("status", timeout=60).returncode == 0
    started = _cluster("start", timeout=START_TIMEOUT_S)
    if started.returncode != 0:
        pytest.fail(
            f"cluster.sh start failed (exit {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield SlurmCluster(base_dir=_base_dir(), script=CLUSTER_SH)
    finally:
        if not was_running and os.environ.get("THINKCOST_SLURM_KEEP") != "1":
            stopped = _cluster("stop", timeout=120)
            if stopped.returncode != 0:
                pytest.fail(
                    f"cluster.sh stop failed (exit {stopped.returncode}):\n"
                    f"{stopped.stdout}\n{stopped.stderr}",
                    pytrace=False,
                )
