"""Processes a check starts, and the ones they leave behind (Linux only).

A check makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process started
under it that outlives its parent (a daemon, an nginx worker whose master was killed, a
server a test forgot) is re-parented to the check instead of to init. After the command
under check has ended, whatever is still below the check was left behind: it can be
named, reported and stopped, and nothing else on the machine is mistaken for it.

Used by `.ci/reap` (the test suite) and `.ci/readme` (the documented commands).
"""

import ctypes
import os
import signal
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process that is not a zombie."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: read after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(name)] = int(fields[1])
    return parents


def descendants(pid: int | None = None) -> list[int]:
    """Live processes below `pid` (default: this process), parents first."""
    root = os.getpid() if pid is None else pid
    parents = _parents()
    found, frontier = [], [root]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def describe(pid: int) -> str:
    """`pid user cwd: command line`, as far as it can still be read."""
    def read(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return "?"

    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "?"
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        uid = "?"
    return f"pid {pid} (uid {uid}, cwd {cwd}): {read(f'/proc/{pid}/cmdline')}"


def reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL for what is still there after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            reap_zombies()
            alive = set(_parents())
            pids = [p for p in pids if p in alive]
            if not pids:
                return
            time.sleep(0.1)


def leftovers() -> list[str]:
    """Describes, then stops, every process still below this one."""
    # A moment for processes that are on their way out (or between fork and exec)
    # to finish, so only what really stays is reported, under its real name.
    time.sleep(0.3)
    reap_zombies()
    pids = descendants()
    described = [describe(p) for p in pids]
    stop(pids)
    return described
