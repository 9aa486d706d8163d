"""Processes of the population index build (sandbox/synthetic/index_build.py), started by spawn() as fresh
interpreters that search for modules exactly where the starting process does (its sys.path, sent on stdin), whether
the sandbox is installed or run from a checkout.

Jobs: ("build", seed, size, path) builds the index and writes it to path, printing "done total" lines as it goes;
("extract", seed, size, [(start, stop), ...]) writes each chunk's keys (index_build.extract_chunk) pickled on
stdout as it finishes it.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

# -I: no working folder, user site or PYTHON* variables on the way to replacing sys.path with the parent's.
_BOOTSTRAP = ("import pickle, sys; path, job = pickle.load(sys.stdin.buffer); sys.path[:] = path; "
              "from sandbox.synthetic.index_worker import run; run(job)")


def spawn(job: tuple) -> subprocess.Popen:
    """A worker process running `job`; its stdout is a pipe (bytes)."""
    process = subprocess.Popen([sys.executable, "-I", "-c", _BOOTSTRAP], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    pickle.dump((sys.path, job), process.stdin)
    process.stdin.close()
    return process


def run(job: tuple) -> None:
    from sandbox.synthetic import index_build, index_file

    if job[0] == "build":
        _, seed, size, path = job

        def report(done: int, total: int) -> None:
            sys.stdout.write(f"{done} {total}\n")
            sys.stdout.flush()

        sections = index_build.build_sections(seed, size, report)
        index_file.write_index(Path(path), index_build.index_meta(seed, size), sections)
    else:
        _, seed, size, ranges = job
        for start, stop in ranges:
            chunk = index_build.extract_chunk(seed, size, start, stop)
            pickle.dump(chunk, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
            sys.stdout.buffer.flush()
