"""Building the population's search index once per (seed, size, generator) and keeping it in a cache folder.

The keys of patient i come from the generator's draws for patient i (key_generator, which gives exactly what
making the person would, at a third of the cost), so a million patients is a million draws: in chunks, over worker
processes (one per core), each chunk filing its patients' keys in sorted tables that are then merged in index
order; a large build runs in a process of its own. The result is written atomically and memory-mapped (sandbox/synthetic/index_file.py); every later
start, and every worker process, opens the file instead of building it again.

The cache folder is $XDG_CACHE_HOME/spine-sandbox/population (~/.cache/spine-sandbox/population): the index is
derived data, the same for every data dir, so one copy serves every sandbox, test run and `spine-sandbox run` on
the machine, and deleting it loses nothing. Where no cache folder can be written, the index is built in memory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import queue
import subprocess
import threading
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

from sandbox.synthetic import identifiers, index_file, places, search_keys
from sandbox.synthetic.index_file import PopulationIndex, StaleIndex
from sandbox.synthetic.search_keys import KEY_TABLES, gender_code, person_keys

log = logging.getLogger("sandbox")

Progress = Callable[[int, int], None]
PARALLEL_FROM = 50_000  # below this, worker processes cost more to start than they save
CHUNKS_PER_WORKER = 16  # small enough chunks for a smooth progress bar
_Table = tuple[list[str], array, array]  # sorted keys, patients per key, patients (in key order)


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spine-sandbox" / "population"


@functools.cache
def generator_fingerprint() -> str:
    """A digest of everything a patient's keys depend on: the generator's code and its name lists. A changed
    generator never opens an index built by an older one."""
    from faker.providers.person.en_GB import Provider

    from sandbox.synthetic import index_build, key_generator, population

    digest = hashlib.sha256()
    for module in (population, places, identifiers, search_keys, key_generator, index_build, index_file):
        digest.update(Path(module.__file__).read_bytes())
    for names in (Provider.first_names_female, Provider.first_names_male, Provider.last_names):
        digest.update("\n".join(names).encode())
    return digest.hexdigest()[:16]


def index_meta(seed: int, size: int) -> dict:
    return {"seed": seed, "size": size, "generator": generator_fingerprint()}


def index_path(folder: Path, seed: int, size: int) -> Path:
    return folder / f"index-v{index_file.FORMAT_VERSION}-{generator_fingerprint()}-seed{seed}-n{size}.bin"


def load_or_build(seed: int, size: int, folder: Path | None, progress: Progress | None = None) -> PopulationIndex:
    """The index from the cache when a valid one is there; otherwise built (once, however many processes ask at the
    same time), written to the cache and opened from it."""
    meta = index_meta(seed, size)
    path = index_path(folder, seed, size) if folder is not None else None
    if path is not None:
        with contextlib.suppress(StaleIndex):
            return _opened(path, meta, progress)
    with _build_lock(path) as writable:
        if writable:  # another process may have built it while this one waited for the lock
            with contextlib.suppress(StaleIndex):
                return _opened(path, meta, progress)
            try:
                if size >= PARALLEL_FROM and _worker_count() > 1:
                    _build_in_subprocess(seed, size, path, progress)
                else:
                    index_file.write_index(path, meta, build_sections(seed, size, progress))
                return index_file.open_index(path, meta)
            except (OSError, StaleIndex, BuildFailed) as exc:
                log.warning("cannot keep the population index in %s (%s); building it in memory", path.parent, exc)
        return index_file.index_from_bytes(index_file.encode_index(meta, build_sections(seed, size, progress)), meta)


class BuildFailed(Exception):
    """The builder process did not write the index."""


def _build_in_subprocess(seed: int, size: int, path: Path, progress: Progress | None) -> None:
    """Build and write the index in a process of its own, so the many short-lived objects of a large build never
    grow this process (in `serve`, the parent every worker is forked from); its stdout reports progress."""
    from sandbox.synthetic.index_worker import spawn

    builder = spawn(("build", seed, size, str(path)))
    try:
        for line in builder.stdout:
            done, _, total = line.decode().partition(" ")
            if progress and done.isdigit() and total.strip().isdigit():
                progress(int(done), int(total))
    except BaseException:  # interrupted (Ctrl-C, a failing progress callback): the build stops with us
        builder.kill()
        raise
    finally:
        builder.stdout.close()
        builder.wait()
    if builder.returncode != 0:
        raise BuildFailed(f"the index builder exited with {builder.returncode}")


def is_cached(seed: int, size: int, folder: Path | None) -> bool:
    """Whether a file for this population is in the cache (not checked: opening it does that)."""
    return folder is not None and index_path(folder, seed, size).is_file()


def _opened(path: Path, meta: dict, progress: Progress | None) -> PopulationIndex:
    index = index_file.open_index(path, meta)
    if progress:
        progress(meta["size"], meta["size"])
    return index


@contextlib.contextmanager
def _build_lock(path: Path | None) -> Iterator[bool]:
    """An exclusive lock beside the index file, so concurrent starts build it once; yields whether the cache folder
    can be written. (The rename in write_index keeps the file whole even without the lock, e.g. on Windows.)"""
    if path is None:
        yield False
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a+b")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        log.warning("cannot use the population cache folder %s (%s); building the index in memory", path.parent,
                    exc)
        yield False
        return
    with handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; racing builders still each write a whole file
            yield True
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- building ----------------------------------------------------------------------------------------------------
def build_sections(seed: int, size: int, progress: Progress | None = None) -> list[tuple[str, bytes]]:
    """Every section of the index file for this population."""
    chunks = _extract_all(seed, size, progress)
    births = array("I", b"".join(c[2] for c in chunks))
    genders = b"".join(c[3] for c in chunks)
    sections: list[tuple[str, bytes]] = []
    for number, name in enumerate(KEY_TABLES):
        keys, counts, patients = _merge([c[1][number] for c in chunks])
        sections += _string_table(name, keys, counts, patients)
    sections += _date_table(births)
    sections += [("birth_of", births.tobytes()), ("gender_of", genders)]
    return sections


def _extract_all(seed: int, size: int, progress: Progress | None) -> list:
    workers = _worker_count()
    if size < PARALLEL_FROM or workers < 2:
        return [_reporting(extract_chunk(seed, size, 0, size), size, progress, [0])]
    step = -(-size // (workers * CHUNKS_PER_WORKER))
    ranges = [(start, min(size, start + step)) for start in range(0, size, step)]
    done = [0]
    chunks = [_reporting(c, size, progress, done) for c in _in_worker_processes(seed, size, ranges, workers)]
    return sorted(chunks, key=lambda c: c[0])


def _in_worker_processes(seed: int, size: int, ranges: list[tuple[int, int]], workers: int) -> Iterator[tuple]:
    """The chunks, as worker processes finish them. Workers are fresh interpreters (index_worker.spawn), not
    multiprocessing's: forking would copy the parent's threads' locks, and spawning re-runs the parent's __main__,
    which may be a script, a REPL or a test runner."""
    from sandbox.synthetic.index_worker import spawn

    finished: queue.Queue = queue.Queue()
    processes = []
    try:
        for number in range(workers):
            mine = ranges[number::workers]  # interleaved, so the workers finish together
            process = spawn(("extract", seed, size, mine))
            processes.append(process)
            threading.Thread(target=_collect, args=(process, len(mine), finished), daemon=True,
                             name=f"population-index-{number}").start()
        for _ in ranges:
            chunk = finished.get()
            if isinstance(chunk, BaseException):
                raise BuildFailed(f"a population index worker failed: {chunk!r}") from chunk
            yield chunk
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def _collect(process: subprocess.Popen, count: int, finished: queue.Queue) -> None:
    try:
        for _ in range(count):
            finished.put(pickle.load(process.stdout))
    except Exception as exc:  # the worker died (its traceback is on stderr): the builder raises
        finished.put(exc)


def _reporting(chunk: tuple, size: int, progress: Progress | None, done: list[int]) -> tuple:
    done[0] += chunk[4]
    if progress:
        progress(done[0], size)
    return chunk


def _worker_count() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def extract_chunk(seed: int, size: int, start: int, stop: int) -> tuple:
    """Patients start..stop-1 filed by key: (start, one _Table per key family, dates of birth as uint32 ordinals,
    genders as bytes, count). Patients are visited in order, so each key's list is ascending."""
    from sandbox.synthetic.population import Population

    population = Population(seed, size)
    keys_of = _key_source(population, start, stop)
    tables: list[defaultdict[str, list[int]]] = [defaultdict(list) for _ in KEY_TABLES]
    births, genders = array("I"), array("B")
    for i in range(start, stop):
        person_keys_, birth, gender = keys_of(population, i)
        for table, keys in zip(tables, person_keys_, strict=True):
            for key in keys:
                table[key].append(i)
        births.append(birth)
        genders.append(gender)
    return start, [_sorted(table) for table in tables], births.tobytes(), genders.tobytes(), stop - start


def _key_source(population, start: int, stop: int) -> Callable:
    """generated_keys when it agrees with making the person on this chunk's first hundred patients (every kind),
    else making each person (slower, never wrong)."""
    from sandbox.synthetic.key_generator import generated_keys

    sample = range(start, min(stop, start + 100))
    if all(generated_keys(population, i) == made_keys(population, i) for i in sample):
        return generated_keys
    log.warning("the fast key generator disagrees with make_person; building the index from whole persons")
    return made_keys


def made_keys(population, index: int) -> tuple:
    from sandbox.synthetic.population import make_person

    person = make_person(population, index)
    return person_keys(person), person.birth_date.toordinal(), gender_code(person)


def _sorted(table: dict[str, list[int]]) -> _Table:
    keys = sorted(table)
    return keys, array("I", (len(table[k]) for k in keys)), array("I", chain.from_iterable(table[k] for k in keys))


def _merge(tables: list[_Table]) -> _Table:
    """One table from the chunks' tables (chunks in index order, so each key's patients stay ascending)."""
    if len(tables) == 1:
        return tables[0]
    starts = []
    for _, counts, _ in tables:
        offsets = array("I", [0])
        for count in counts:
            offsets.append(offsets[-1] + count)
        starts.append(offsets)
    entries = sorted((key, chunk, at) for chunk, (keys, _, _) in enumerate(tables) for at, key in enumerate(keys))
    keys_out: list[str] = []
    counts_out, patients_out = array("I"), array("I")
    for key, chunk, at in entries:
        offsets, patients = starts[chunk], tables[chunk][2]
        patients_out.extend(patients[offsets[at]:offsets[at + 1]])
        if keys_out and keys_out[-1] == key:
            counts_out[-1] += offsets[at + 1] - offsets[at]
        else:
            keys_out.append(key)
            counts_out.append(offsets[at + 1] - offsets[at])
    return keys_out, counts_out, patients_out


def _string_table(name: str, keys: list[str], counts: array, patients: array) -> list[tuple[str, bytes]]:
    encoded = [k.encode() for k in keys]
    return [(f"{name}.keys", b"".join(encoded)), (f"{name}.key_offsets", _running_total(len(e) for e in encoded)),
            (f"{name}.offsets", _running_total(counts)), (f"{name}.postings", patients.tobytes())]


def _date_table(births: array) -> list[tuple[str, bytes]]:
    by_day: defaultdict[int, list[int]] = defaultdict(list)
    for i, day in enumerate(births):
        by_day[day].append(i)
    days = sorted(by_day)
    return [("birth.keys", array("I", days).tobytes()),
            ("birth.offsets", _running_total(len(by_day[d]) for d in days)),
            ("birth.postings", array("I", chain.from_iterable(by_day[d] for d in days)).tobytes())]


def _running_total(sizes) -> bytes:
    offsets = array("I", [0])
    total = 0
    for size in sizes:
        total += size
        offsets.append(total)
    return offsets.tobytes()
