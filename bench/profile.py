"""Summarise a py-spy ``--format raw`` (collapsed stacks) file: where the time goes."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path


def _frame_name(frame: str) -> str:
    # "function (module/path.py:123)" -> "function (path.py)"
    found = re.match(r"(.*?) \((.*?):\d+\)$", frame)
    if not found:
        return frame
    path = found.group(2)
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{found.group(1)} ({path})"


def summarise(path: Path, top: int = 25) -> str:
    task_self: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        threads[frames[0]] += count
        names = [_frame_name(f) for f in frames[1:]]
        if names:
            self_time[names[-1]] += count
            if any(n.startswith("SourceTaskRunner._run") for n in names):
                task_self[names[-1]] += count
        for name in set(names):
            total_time[name] += count
    out = [f"{samples} samples"]
    out.append("by thread:")
    out += [f"  {100 * n / samples:5.1f}%  {t}" for t, n in threads.most_common(8)]
    out.append("self time:")
    out += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    task_total = sum(task_self.values()) or 1
    out.append(f"task threads only ({task_total} samples), self time:")
    out += [f"  {100 * n / task_total:5.1f}%  {f}" for f, n in task_self.most_common(top)]
    out.append("inclusive time:")
    out += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in total_time.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
