"""This process's id, without the system call os.getpid() makes each time: the journal asks on every request whether
the files it holds open are its own or were inherited through a fork."""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    return _pid
