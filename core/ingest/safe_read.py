"""Run a reader of untrusted bytes in a child process with a memory limit (RLIMIT_AS) and a
wall-clock limit, so a bomb or a reader bug ends as an UnreadableFile naming the file, never as a
dead server or scheduler. Children fork from a forkserver that has the readers imported.

The bytes and the table read travel through two anonymous in-memory files (memfd) that the parent
creates and hands to the child, not through the pipe: a pipe moves 64 KB a turn, so 300 MB took
seconds of both processes taking turns on a busy machine, where a file is written and read in one
go; only a one-word reply uses the pipe. In memory, not in the temp folder: written to a disk, the
spool's 300–500 MB of a 1M-row file waited on the disk's write-back (0.15–0.7 s a file here). The
files have no name, so nothing is left behind whatever ends the child. The table's buffers (Arrow
columns, numpy arrays) are written out of band, one after another, and the parent maps them: they
are used where they lie, not unpickled into a copy (300 MB of text: 0.3 s and a second 300 MB at
the peak)."""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import pickle
import resource
import struct
import tempfile
import time
from collections.abc import Callable
from multiprocessing import forkserver, reduction, spawn
from typing import Any

from core.errors import FileProblem, UnreadableFile

log = logging.getLogger(__name__)

PRELOAD = ("core.ingest.readers", "core.reads.identifiers")
CHILD_NAME = "marketpulse-read"
MB = 1024 * 1024
_CTX = multiprocessing.get_context("forkserver")
_ALIGN = 64  # bytes: Arrow's alignment for each buffer mapped back
_LENGTH = struct.Struct("<Q")  # the reply's index, before its buffers
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


class _Handed:
    """A file descriptor handed to the reading child as it starts (multiprocessing passes it
    through the forkserver's socket); it arrives as the child's own descriptor number."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Callable[[Any], int], tuple[Any]]:
        return _received, (reduction.DupFd(self.fd),)


def _received(handed: Any) -> int:
    return handed.detach()


def _memory_file(name: str) -> int:
    """An anonymous file in memory (a temp file without a name where memfd is missing)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name, os.MFD_CLOEXEC)
    return os.dup(tempfile.TemporaryFile().fileno())


def _child(conn: Any, memory_mb: int, args_fd: int, reply_fd: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    devnull = os.open(os.devnull, os.O_WRONLY)  # a reader's panic or abort is reported by the
    os.dup2(devnull, 2)  # parent, naming the file, not dumped into the server's log
    with open(args_fd, "rb") as file:  # the parent's descriptor's twin: one offset, at the end
        file.seek(0)
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
            _spool_reply(reply_fd, reply)
            reply = ("spooled",)
        except MemoryError:
            reply = ("memory",)
    conn.send(reply)
    conn.close()


def _spool_reply(fd: int, reply: tuple) -> None:
    """The reply pickled with its large buffers out of band into the file `fd`: the length of an
    index, the index (each buffer's place and size, and the pickle that names them), then the
    buffers one after another, each at an aligned place."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(reply, protocol=5, buffer_callback=buffers.append)
    places: list[tuple[int, int]] = []
    end = 0
    for buffer in buffers:
        size = buffer.raw().nbytes
        end += -end % _ALIGN
        places.append((end, size))
        end += size
    index = pickle.dumps((places, body), protocol=5)
    start = _LENGTH.size + len(index)
    start += -start % _ALIGN
    with open(fd, "wb", closefd=False) as file:
        file.seek(0)
        file.write(_LENGTH.pack(len(index)) + index)
        for (at, _), buffer in zip(places, buffers, strict=True):
            file.seek(start + at)
            file.write(buffer.raw())


def _load_reply(fd: int) -> tuple:
    """The child's reply, its buffers mapped from the file (copy-on-write: writable, and the
    mapping outlives the file's descriptor)."""
    with open(fd, "rb", closefd=False) as file:
        file.seek(0)
        (length,) = _LENGTH.unpack(file.read(_LENGTH.size))
        places, body = pickle.loads(file.read(length))
    start = _LENGTH.size + length
    start += -start % _ALIGN
    if not any(size for _, size in places):  # nothing to map
        return pickle.loads(body, buffers=[bytearray() for _ in places])
    mapped = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_COPY))
    return pickle.loads(body, buffers=[mapped[start + at:start + at + size]
                                       for at, size in places])


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
    args_fd, reply_fd = _memory_file(f"{CHILD_NAME}-args"), _memory_file(f"{CHILD_NAME}-reply")
    try:
        with open(args_fd, "wb", closefd=False) as file:
            pickle.dump((func, args), file, protocol=pickle.HIGHEST_PROTOCOL)
        reply, peak, started, exitcode = _wait((args_fd, reply_fd), memory_mb, seconds, filename,
                                               unreadable)
        last_peak_mb = peak
        log.info("%s read in a child in %.2f s, peak %.0f MB", filename,
                 time.monotonic() - started, peak)
        if reply is not None and reply[0] == "spooled":
            reply = _load_reply(reply_fd)
    finally:
        os.close(args_fd)
        os.close(reply_fd)
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


def _wait(files: tuple[int, int], memory_mb: int, seconds: float, filename: str,
          unreadable: str) -> tuple[tuple | None, float, float, int | None]:
    """Start the child on the spooled arguments and reply file and wait for its reply (None: it
    died); kill it after `seconds`. Returns (reply, its peak RSS in MB, when it started, its exit
    status)."""
    receive, send = _CTX.Pipe(duplex=False)
    handed = tuple(_Handed(fd) for fd in files)
    child = _CTX.Process(target=_child, args=(send, memory_mb, *handed), daemon=True,
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
