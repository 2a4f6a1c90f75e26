"""CPU readings for the benchmark (Linux: /proc and ``resource``), all in user+sys seconds.

* :func:`proc_cpu`: what a live child process has used so far, from ``/proc/PID/stat``, so a window of its life
  (``initialize`` answered to ``shutdownRequested`` answered) can be measured without start-up and exit; None
  where /proc cannot be read (the caller then falls back to the gross figure).
* :func:`children_cpu`: ``RUSAGE_CHILDREN``, the gross figure of every child reaped so far (start-up and exit
  included); only differences of two readings mean anything.
* :func:`self_cpu`: ``RUSAGE_SELF`` of this process (every thread), for a contender measuring itself.
"""

from __future__ import annotations

import os
import resource


def children_cpu() -> float:
    """user+sys CPU seconds of every reaped child of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> float | None:
    """user+sys CPU seconds a live process has used so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def self_cpu() -> float:
    """user+sys CPU seconds of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
