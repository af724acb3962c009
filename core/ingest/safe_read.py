"""Run a reader of untrusted bytes in a child process with a memory limit (RLIMIT_AS) and a
wall-clock limit, so a bomb or a reader bug ends as an UnreadableFile naming the file, never as a
dead server or scheduler. Children fork from a forkserver that has the readers imported.

The bytes and the table read travel through a private spool folder, not the pipe: a pipe moves
64 KB a turn, so 300 MB took seconds of both processes taking turns on a busy machine (3.4 s here
under load), where a file is written and read in one go; only a one-word reply uses the pipe.
The table's buffers (Arrow columns, numpy arrays) are written out of band, one after another in
a file the parent maps into memory: they are used where they lie, not unpickled into a copy
(300 MB of text: 0.3 s and a second 300 MB at the peak)."""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import pickle
import resource
import tempfile
import time
from collections.abc import Callable
from multiprocessing import forkserver, spawn
from typing import Any

from core.errors import FileProblem, UnreadableFile

log = logging.getLogger(__name__)

PRELOAD = ("core.ingest.readers", "core.reads.identifiers")
CHILD_NAME = "marketpulse-read"
MB = 1024 * 1024
_CTX = multiprocessing.get_context("forkserver")
_ARGS, _REPLY, _BUFFERS = "args.pickle", "reply.pickle", "reply.buffers"  # in the spool folder
_ALIGN = 64  # bytes: Arrow's alignment for each buffer mapped back
_preloaded = False
last_peak_mb: float = 0.0  # the peak RSS of the last child (for benchmarks and the report)


def _preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's child preparation, without re-running the parent's main module in a
    reading child (Streamlit's page script, a test runner, a script without a main guard)."""
    data = _original_preparation_data(name)
    if name.startswith(CHILD_NAME):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


_original_preparation_data = spawn.get_preparation_data
spawn.get_preparation_data = _preparation_data


def _preload() -> None:
    """Import the readers once in the forkserver, so each child starts with them."""
    global _preloaded
    if not _preloaded:
        _CTX.set_forkserver_preload(list(PRELOAD))
        _preloaded = True


def warm(*, wait: bool = False) -> None:
    """Start the forkserver now: it imports the readers once (a second or so on a busy machine),
    which the first file a process reads would otherwise wait for. The app and the scheduler call
    this as they start; wait=True returns once a child has started (benchmarks)."""
    _preload()
    forkserver.ensure_running()
    if wait:
        run_isolated(int, (), "warm-up", memory_mb=0, seconds=0, unreadable="")


def _child(conn: Any, memory_mb: int, spool: str) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    devnull = os.open(os.devnull, os.O_WRONLY)  # a reader's panic or abort is reported by the
    os.dup2(devnull, 2)  # parent, naming the file, not dumped into the server's log
    with open(os.path.join(spool, _ARGS), "rb") as file:
        func, args = pickle.load(file)  # before the limit: the parent held them too
    if memory_mb:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + memory_mb * MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        reply: tuple = ("ok", func(*args))
    except FileProblem as exc:
        reply = ("problem", exc.file, exc.detail, exc.sheet)
    except MemoryError:
        reply = ("memory",)
    except BaseException as exc:  # a reader's own error or panic: the file is unreadable
        reply = ("error", f"{type(exc).__name__}: {exc}"[:300])
    if reply[0] == "ok":
        try:
            _spool_reply(spool, reply)
            reply = ("spooled",)
        except MemoryError:
            reply = ("memory",)
    conn.send(reply)
    conn.close()


def _spool_reply(spool: str, reply: tuple) -> None:
    """The reply pickled with its large buffers out of band: the pickle names them, and they
    follow one another (aligned) in the buffers file, with their places in a small index."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(reply, protocol=5, buffer_callback=buffers.append)
    places: list[tuple[int, int]] = []
    with open(os.path.join(spool, _BUFFERS), "wb") as file:
        for buffer in buffers:
            raw = buffer.raw()
            at = -file.tell() % _ALIGN
            file.write(b"\0" * at)
            places.append((file.tell(), raw.nbytes))
            file.write(raw)
    with open(os.path.join(spool, _REPLY), "wb") as file:
        pickle.dump((places, body), file, protocol=5)


def _load_reply(spool: str) -> tuple:
    """The child's reply, its buffers mapped from the spool (copy-on-write: writable, and the
    mapping outlives the folder's removal)."""
    with open(os.path.join(spool, _REPLY), "rb") as file:
        places, body = pickle.load(file)
    if not any(size for _, size in places):  # nothing to map (an empty file cannot be mapped)
        return pickle.loads(body, buffers=[bytearray() for _ in places])
    with open(os.path.join(spool, _BUFFERS), "rb") as file:
        mapped = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY))
    return pickle.loads(body, buffers=[mapped[at:at + size] for at, size in places])


def _hwm_mb(pid: int | None) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_isolated(func: Callable[..., Any], args: tuple, filename: str, *, memory_mb: int,
                 seconds: float, unreadable: str) -> Any:
    """func(*args) in a child limited to `memory_mb` more MB than it starts with (0 = no limit)
    and `seconds` of wall clock (0 = no limit). FileProblem raised in the child is raised here;
    any other failure, a crash or a kill becomes UnreadableFile(filename, ...)."""
    global last_peak_mb
    _preload()
    with tempfile.TemporaryDirectory(prefix="marketpulse-read-") as spool:  # mode 0700
        with open(os.path.join(spool, _ARGS), "wb") as file:
            pickle.dump((func, args), file, protocol=pickle.HIGHEST_PROTOCOL)
        reply, peak, started, exitcode = _wait(spool, memory_mb, seconds, filename, unreadable)
        last_peak_mb = peak
        log.info("%s read in a child in %.2f s, peak %.0f MB", filename,
                 time.monotonic() - started, peak)
        if reply is not None and reply[0] == "spooled":
            reply = _load_reply(spool)
    if reply is None or reply[0] == "memory":
        how = "" if reply else f" or crashed the reader (exit status {exitcode})"
        raise UnreadableFile(filename, f"could not be read safely: reading it needs more than "
                             f"{memory_mb} MB of memory (upload.read_memory_mb){how}; open it in "
                             "Excel, delete what is not colors, save it as .xlsx and upload again")
    if reply[0] == "ok":
        return reply[1]
    if reply[0] == "problem":
        raise UnreadableFile(reply[1], reply[2], sheet=reply[3])
    log.warning("reading %s failed in the child: %s", filename, reply[1])
    raise UnreadableFile(filename, unreadable)


def _wait(spool: str, memory_mb: int, seconds: float, filename: str, unreadable: str
          ) -> tuple[tuple | None, float, float, int | None]:
    """Start the child on the spooled arguments and wait for its reply (None: it died); kill it
    after `seconds`. Returns (reply, its peak RSS in MB, when it started, its exit status)."""
    receive, send = _CTX.Pipe(duplex=False)
    child = _CTX.Process(target=_child, args=(send, memory_mb, spool), daemon=True,
                         name=f"{CHILD_NAME}-{filename[:40]}")
    started = time.monotonic()
    child.start()
    send.close()
    peak, reply = 0.0, None
    try:
        while True:
            peak = max(peak, _hwm_mb(child.pid))
            if receive.poll(0.05):
                try:
                    reply = receive.recv()
                except (EOFError, OSError):
                    reply = None
                break
            if seconds and time.monotonic() - started > seconds:
                child.kill()
                raise UnreadableFile(filename, f"could not be read safely: reading it took longer "
                                     f"than {seconds:g} s (upload.read_seconds); {unreadable}")
    finally:
        receive.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    return reply, peak, started, child.exitcode
