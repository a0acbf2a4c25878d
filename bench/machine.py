"""Describe the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}; "
        f"{platform.system()} {platform.release()}"
    )


def revision() -> str:
    """The code measured: commit, and whether src/ had uncommitted changes (they count)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    state = f"src/ with {len(changed)} uncommitted changes" if changed else "clean src/"
    return f"code: {commit} ({state})"
