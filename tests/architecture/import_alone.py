"""Import each named module alone: ``python import_alone.py RESULT.json MODULE...``.

A fresh interpreter per module would cost seconds each (the third-party libraries load
every time), so this process forks one child per module instead, after warming up:

1. a first child imports every module it can and reports which *other* modules that loaded;
2. this process imports those (third-party only: no module of the package under test);
3. each module is then imported in a child forked from that warm process, with nothing of
   the package in it yet, so an import that works only after another module's fails there.

The failures (module -> traceback) are written to RESULT.json.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable


def in_child(work: Callable[[], str]) -> tuple[int, int]:
    """Fork; the child runs ``work`` and sends back what it returns. (pid, read end)"""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # what an import prints is not our report
        try:
            report = work()
        except BaseException:
            report = traceback.format_exc()
        with os.fdopen(write, "wb") as pipe:  # the parent reads while we write
            pipe.write(report.encode())
        os._exit(0)
    os.close(write)
    return pid, read


def collect(pid: int, read: int) -> str:
    chunks = []
    while chunk := os.read(read, 65_536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode(errors="replace")
    if not report and status != 0:
        return f"the child died (wait status {status})"
    return report


def root(name: str) -> str:
    return name.partition(".")[0]


def dependencies(modules: list[str]) -> list[str]:
    """The modules outside the tested packages that importing ``modules`` loads (those that
    fail too: their own child reports them)."""
    tested = {root(name) for name in modules}

    def load_all() -> str:
        before = set(sys.modules)
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 - its own child reports it
                continue
        loaded = [name for name in sys.modules if name not in before]
        return json.dumps([name for name in loaded if root(name) not in tested])

    report = collect(*in_child(load_all))
    try:
        found: list[str] = json.loads(report)
    except ValueError:
        raise SystemExit(f"could not list the dependencies:\n{report}") from None
    return found


def import_one(name: str) -> Callable[[], str]:
    def work() -> str:
        try:
            importlib.import_module(name)
        except BaseException:
            return traceback.format_exc()
        return ""

    return work


def main(result_path: str, modules: list[str]) -> None:
    for name in dependencies(modules):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - a warm-up only: the children import for real
            continue
    running: list[tuple[str, int, int]] = []
    failures: dict[str, str] = {}
    width = max(2, os.cpu_count() or 2)
    for index, name in enumerate(modules):
        running.append((name, *in_child(import_one(name))))
        if len(running) >= width or index == len(modules) - 1:
            for done, pid, read in running:
                report = collect(pid, read)
                if report:
                    failures[done] = report
            running = []
    with open(result_path, "w") as result:
        json.dump(failures, result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
