"""A real one-node SLURM cluster for the ``slurm`` tests, brought up from Debian's packages.

The session fixture ``slurm_cluster`` starts munged (as the ``munge`` user, socket in a private
temporary directory), slurmctld and slurmd in the foreground (no systemd), waits until the node is
idle, and tears everything down afterwards. Slurm 22.05 is configured with
``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none`` and no accounting, so ``sacct`` does
not work: runs must query job status with ``squeue``, which only sees finished jobs for
``MinJobAge`` seconds (set here to 300 s, far above 3x the 2 s first status wait used by the tests).

The configuration is written to ``/etc/slurm/slurm.conf`` (and removed afterwards), because the
executor's job step (``srun`` inside the batch job) drops ``SLURM_CONF`` from its environment and
only finds the default path. An existing configuration there that this fixture did not write is
left alone and the tests skip. A lock file serialises concurrent test sessions on one machine.

The tests skip, saying why, only when SLURM cannot be installed or started here (not root, packages
missing, an existing cluster configuration, daemons that do not come up).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "SLURM_TEST_ARGS",
    "SlurmCluster",
    "run_snakemake",
    "slurm_cluster",
    "slurm_run",
    "snakemake_runner",
]

_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun", "sinfo")
_ETC_CONF = Path("/etc/slurm/slurm.conf")
_MARKER = "# written by petbp tests/slurm/conftest.py"
_LOCK = Path(tempfile.gettempdir()) / "petbp-slurm-test.lock"
#: MinJobAge (s): squeue forgets finished jobs after this; >= 3x the first status-check wait.
MIN_JOB_AGE_S = 300
#: CPUs the test node offers (oversubscribing small machines: SlurmdParameters=config_overrides):
#: test jobs are mostly interpreter start-up, and the executor checks job status every ~12 s, so
#: running the jobs of a DAG level together instead of two at a time saves most of the wall time.
NODE_CPUS = 8
#: The partition of the test cluster.
PARTITION = "petbp"
#: The repository's SLURM workflow profile.
SLURM_PROFILE = Path(__file__).resolve().parents[2] / "workflow" / "profiles" / "slurm"
#: Overrides of the profile for a cluster without accounting and for short test runs.
SLURM_TEST_ARGS = (
    "--workflow-profile", str(SLURM_PROFILE),
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
    "--retries", "0", "--latency-wait", "5", "--jobs", str(8),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_line() -> str:
    """The node's name and memory as slurmd detects them (``slurmd -C``), with ``NODE_CPUS``."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True)
    fields = dict(f.split("=", 1) for f in out.stdout.splitlines()[0].split())
    cpus = max(NODE_CPUS, int(fields["CPUs"]))
    return (f"NodeName={fields['NodeName']} CPUs={cpus} Boards=1 SocketsPerBoard=1 "
            f"CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={fields['RealMemory']}")


@dataclass
class SlurmCluster:
    """A running one-node cluster; ``root`` holds its configuration, logs and state."""

    root: Path
    node: str
    partition: str = PARTITION
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def ctld_log(self) -> Path:
        """The slurmctld log (every submitted job id appears here)."""
        return self.root / "log" / "slurmctld.log"

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster, raising on failure."""
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)

    def submitted_job_ids(self) -> set[str]:
        """Job ids slurmctld has allocated so far (from its log; there is no accounting)."""
        ids = set()
        for line in self.ctld_log.read_text(errors="replace").splitlines():
            if "_slurm_rpc_submit_batch_job: JobId=" in line:
                ids.add(line.split("JobId=")[1].split()[0])
        return ids

    def log_tail(self, n: int = 15) -> str:
        """The last lines of every daemon log, for skip and failure messages."""
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-n:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def run_snakemake(workdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` under ``timeout`` (s); stdout+stderr together in ``.stdout``.

    ``timeout`` sends SIGTERM first, so snakemake cancels its SLURM jobs before it is killed.
    """
    cmd = ["timeout", "--kill-after=20", str(int(timeout)), sys.executable, "-m", "snakemake",
           "--directory", str(workdir), *args]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout + 60)


def _write_config(root: Path, node_line: str) -> str:
    node = node_line.split()[0].split("=", 1)[1]
    conf = f"""{_MARKER}
ClusterName=petbptest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge={MIN_JOB_AGE_S}
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    (root / "slurm.conf").write_text(conf)
    return node


def _start_munge(root: Path, procs: dict) -> None:
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    user = pwd.getpwnam("munge")
    for path in (munge_dir, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    procs["munged"] = subprocess.Popen(
        ["munged", "--foreground", f"--key-file={key}", f"--socket={munge_dir}/munge.socket",
         f"--pid-file={munge_dir}/munged.pid", f"--log-file={root}/log/munged.log",
         f"--seed-file={munge_dir}/munged.seed"],
        user=user.pw_uid, group=user.pw_gid, extra_groups=[],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    _wait_for(lambda: (munge_dir / "munge.socket").exists(), 15, "munged socket")


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _node_idle(partition: str) -> bool:
    out = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%t"], capture_output=True,
                         text=True, timeout=10)
    return out.returncode == 0 and out.stdout.strip() == "idle"


def _cannot_run() -> str | None:
    """Why a cluster cannot be brought up here, or None."""
    missing = [b for b in _BINARIES if shutil.which(b) is None]
    if missing:
        return (f"SLURM is not installed (missing {', '.join(missing)}); "
                "install munge slurmctld slurmd slurm-client (.ci/system-packages)")
    if os.geteuid() != 0:
        return "bringing up slurmd and munged needs root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "there is no 'munge' user (the munge package creates it)"
    if _ETC_CONF.exists() and _MARKER not in _ETC_CONF.read_text(errors="replace"):
        return f"{_ETC_CONF} exists and belongs to a real cluster; the test leaves it alone"
    return None


def _stop(cluster: SlurmCluster) -> None:
    if "slurmctld" in cluster.procs:
        subprocess.run(["scancel", "--full", f"--partition={cluster.partition}"],
                       capture_output=True, timeout=30)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node SLURM cluster running for the whole test session (see module docstring)."""
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session's cluster: wait for it to finish
        root = Path(tempfile.mkdtemp(prefix="petbp-slurm-"))
        root.chmod(0o755)  # munged refuses a socket directory without execute for all
        for sub in ("log", "state", "spool"):
            (root / sub).mkdir()
        try:
            cluster = SlurmCluster(root=root, node=_write_config(root, _node_line()))
        except (OSError, subprocess.SubprocessError, IndexError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"SLURM could not be configured: slurmd -C failed: {exc}")
        _ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "slurm.conf", _ETC_CONF)
        saved_env = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(_ETC_CONF)
        try:
            try:
                _start_munge(root, cluster.procs)
                for daemon in ("slurmctld", "slurmd"):
                    cluster.procs[daemon] = subprocess.Popen(
                        [daemon, "-D"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                        start_new_session=True)
                _wait_for(lambda: _node_idle(cluster.partition), 60, "the SLURM node")
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                pytest.skip(f"SLURM could not be started: {exc}\n{cluster.log_tail()}")
            yield cluster
        finally:
            _stop(cluster)
            if saved_env is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved_env
            if _ETC_CONF.exists() and _MARKER in _ETC_CONF.read_text(errors="replace"):
                _ETC_CONF.unlink()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm_run(slurm_cluster):
    """``slurm_run(workdir, *args, timeout=240)``: snakemake via the SLURM test profile."""

    def _run(workdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return run_snakemake(workdir, *SLURM_TEST_ARGS, *args, timeout=timeout)

    return _run


@pytest.fixture(scope="session")
def snakemake_runner():
    """:func:`run_snakemake` (local runs, e.g. the reference run of the cluster test)."""
    return run_snakemake
