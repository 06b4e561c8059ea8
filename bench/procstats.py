"""CPU seconds, resident memory and the machine's description, read from /proc."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def all_pids() -> list[int]:
    """Every process id in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(root: int) -> float:
    """user+sys CPU of ``root`` and its live descendants, plus its reaped children."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM) of one process, in MiB."""
    found = dict.fromkeys(("VmRSS", "VmHWM"), 0.0)
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = round(int(value.split()[0]) / 1024, 1)  # kB
    return {"rss_mib": found["VmRSS"], "peak_rss_mib": found["VmHWM"]}


def find_pid(command_name: str) -> int | None:
    """The oldest process with this command name (e.g. the broker's ``beam.smp``)."""
    for pid in sorted(all_pids()):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == command_name:
                return pid
    return None


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over every CPU of the machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    """CPU seconds of the processes we watch, at one moment."""

    serve: float
    receiver: float
    broker: float
    machine: float


def cpu_snapshot(serve_pid: int, receiver_pid: int, broker_pid: int | None) -> CpuSnapshot:
    """CPU seconds so far of serve (and children), the receiver, the broker, the machine."""
    return CpuSnapshot(
        serve=cpu_seconds(serve_pid),
        receiver=cpu_seconds(receiver_pid),
        broker=cpu_seconds(broker_pid) if broker_pid else 0.0,
        machine=machine_busy_seconds(),
    )


def machine_info() -> dict[str, Any]:
    """nproc, memory and CPU model of this machine, and its load average now."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else "?",
        "memory_gib": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "python": platform.python_version(),
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }
