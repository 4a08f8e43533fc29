"""Measurement helpers shared by the benchmarks: timing, medians, peak memory of this process, the code measured."""
import os
import resource
import statistics
import subprocess
import sys
import time

#: The repository root (the folder holding ``wish_d2``), for configs and for child processes.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: When the benchmark started (its modules were imported): the origin of the log times and of total_s.
START_TIME = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - START_TIME:6.1f}s] {msg}", file=sys.stderr, flush=True)


def median(xs):
    return float(statistics.median(xs))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def proc_status_mb(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mb() -> float:
    return proc_status_mb("VmRSS")


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` (Linux: KiB). Caveat: Linux carries the PARENT's peak into a child
    across fork+exec (``signal->maxrss``), so in a child of a big process it can report the parent's size;
    ``VmHWM`` belongs to the child's own address space and is what the RSS keys use."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def git_state() -> dict:
    """The code measured: commit, and whether the working tree had uncommitted changes to tracked files."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        return {"git_commit": commit or None, "git_modified": [x[3:] for x in dirty if x.strip()]}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def run_child(kind: str, spec: dict, timeout: int = 900) -> dict:
    """Run one measurement in a fresh interpreter (``python -m wish_d2.benchmark.child KIND SPEC``): its peak RSS is
    its own, not this process's. Returns the dict the child printed as its last line."""
    import json

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "wish_d2.benchmark.child", kind, json.dumps(spec)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {kind!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
