"""Shared helpers for the benchmark scripts: the machine description, order statistics, output.

Not a benchmark itself. The scripts run as `python benchmarks/<name>.py`, so this folder is on
sys.path and they `import _bench`.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _docker() -> dict[str, Any]:
    try:
        import docker
        client = docker.from_env(timeout=30)
        version = client.version()
        info = client.info()
        return {"server_version": version.get("Version"), "api_version": version.get("ApiVersion"),
                "storage_driver": info.get("Driver"), "cgroup_version": info.get("CgroupVersion"),
                "default_runtime": info.get("DefaultRuntime")}
    except Exception as exc:  # no engine: say so, the benchmark decides whether that matters
        return {"server_version": None, "error": f"{type(exc).__name__}: {exc}"[:200]}


def machine() -> dict[str, Any]:
    """cpu count, cpu model, memory, kernel, docker server, python, load when measured (at the end)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpus": os.cpu_count(), "cpus_usable": usable, "cpu_model": _cpu_model(),
            "memory_gib": _memory_gib(), "kernel": platform.release(), "platform": platform.platform(),
            "python": platform.python_version(), "python_executable": sys.executable, "docker": _docker(),
            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()]}


def code() -> dict[str, Any]:
    """The checkout measured: commit and whether the working tree had uncommitted changes."""
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return {"commit": commit, "uncommitted_changes_outside_benchmarks": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes_outside_benchmarks": None}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) on the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats_ms(seconds: list[float], digits: int = 1) -> dict[str, Any]:
    """n, median, p90, min, max, mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), digits),
            "p90_ms": round(percentile(ms, 0.90), digits), "min_ms": round(min(ms), digits),
            "max_ms": round(max(ms), digits), "mean_ms": round(statistics.fmean(ms), digits)}


def ratio(a: float, b: float, digits: int = 2) -> float | None:
    return round(a / b, digits) if b else None


def emit(document: dict[str, Any], out: Path | None) -> None:
    """Print the JSON document; also write it to `out` when given."""
    text = json.dumps(document, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


FOREIGN_MARKERS = ("pytest", "-m evaluator", "bin/ctxeval", "phoenix", "docker build", "pip install")


class Interference:
    """Watches, every `period` seconds, for work on the machine that is not this benchmark's:
    processes matching FOREIGN_MARKERS outside this process tree, and load; and over the whole
    interval the host's busy and steal time (cores; steal = CPU the hypervisor gave to others).
    The benchmarks share a small virtual machine: this says whether a figure was taken on a quiet one."""

    def __init__(self, period: float = 2.0):
        import threading
        self.period = period
        self.samples = 0
        self.busy_samples = 0
        self.examples: list[str] = []
        self.max_load1 = 0.0
        self.dockerd_pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-interference", daemon=True)

    @staticmethod
    def _parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    @staticmethod
    def _is_dockerd(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].endswith(b"/dockerd")
        except OSError:
            return False

    def _foreign(self) -> list[str]:
        mine = os.getpid()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if cmdline.split(" ", 1)[0].endswith("/dockerd") and not self._is_dockerd(self._parent(int(entry.name))):
                self.dockerd_pids.add(int(entry.name))  # an engine, not a short-lived child it re-executed
            if not any(marker in cmdline for marker in FOREIGN_MARKERS):
                continue
            pid, ancestors = int(entry.name), 0
            while pid > 1 and pid != mine and ancestors < 64:
                pid, ancestors = self._parent(pid), ancestors + 1
            if pid != mine:
                found.append(cmdline[:160])
        return found

    def _watch(self) -> None:
        while True:
            foreign = self._foreign()
            self.samples += 1
            self.max_load1 = max(self.max_load1, os.getloadavg()[0])
            if foreign:
                self.busy_samples += 1
                for line in foreign:
                    if line not in self.examples and len(self.examples) < 5:
                        self.examples.append(line)
            if self._stop.wait(self.period):
                return

    @staticmethod
    def _cpu() -> tuple[float, float, float]:
        """(busy, steal, monotonic) seconds: busy = user+nice+system+irq+softirq over all CPUs."""
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        import time
        return ((fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / hz,
                (fields[7] if len(fields) > 7 else 0) / hz, time.monotonic())

    def __enter__(self) -> "Interference":
        self._cpu_start = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        busy, steal, now = self._cpu()
        wall = max(now - self._cpu_start[2], 1e-9)
        self.busy_cores = (busy - self._cpu_start[0]) / wall
        self.steal_cores = (steal - self._cpu_start[1]) / wall

    def record(self) -> dict[str, Any]:
        return {"samples": self.samples, "period_s": self.period,
                "samples_with_foreign_work": self.busy_samples, "max_load1": round(self.max_load1, 2),
                "busy_cores": round(self.busy_cores, 2) if hasattr(self, "busy_cores") else None,
                "steal_cores": round(self.steal_cores, 2) if hasattr(self, "steal_cores") else None,
                "examples": self.examples, "docker_engine_restarted": len(self.dockerd_pids) > 1,
                "quiet": self.busy_samples == 0 and len(self.dockerd_pids) <= 1}


# spins until told to stop, or until its parent is gone (a killed benchmark leaves no spinner behind)
SPINNER = "import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n    pass\n"


class KeepBusy:
    """`count` spinning processes at nice 19, started and stopped by this object (by their own pid).

    On this virtual machine a half-idle VM runs a serial workload much slower than a busy one (the
    idle vCPU halts; waking it, and the steal time that comes with it, stretch every hand-off
    between the evaluator, dockerd, containerd and the container). Spinners at the lowest priority
    keep every vCPU awake while taking only CPU nobody else wants: the control for that effect."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[Any] = []

    def __enter__(self) -> "KeepBusy":
        import subprocess
        for _ in range(self.count):
            self.processes.append(subprocess.Popen([sys.executable, "-c", SPINNER, str(os.getpid())],
                                                   preexec_fn=lambda: os.nice(19)))
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()
