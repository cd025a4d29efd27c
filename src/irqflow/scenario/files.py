"""The files a scenario run touches, and the rules that keep a shared scenario safe.

* **Reading.**  A scenario file (named on the command line) and the CSV files it names
  are read only if they are regular files (not a FIFO, a device or a directory) and no
  larger than :data:`MAX_SCENARIO_BYTES` / :data:`MAX_CSV_BYTES`.  A CSV file named in a
  scenario is a relative path below the scenario's directory: no absolute path, no
  ``..``, no symlink on the way (each directory is opened with ``O_NOFOLLOW`` relative to
  the one before, so nothing can swap a link in between).
* **Writing.**  An output file named in a scenario's ``[record]`` table follows the same
  path rules below the output directory (the current one, or ``--out-dir``), is never
  a symlink and never replaces an existing file unless ``force`` (then only a regular
  file).  An output named on the command line is the user's own and is opened as given.
  Either way :meth:`Output.check` looks at everything that could fail before the run
  (the directory exists and is writable, the name fits, it is not a directory), so a long
  run is not lost to a bad path.

Errors are :class:`PathError`, whose message says what is wrong and how to fix it; the
caller puts the file and key in front.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from irqflow.core.errors import IrqflowError

#: the largest scenario file read (4 MiB)
MAX_SCENARIO_BYTES = 4 * 2**20
#: the largest CSV arrival file read (64 MiB)
MAX_CSV_BYTES = 64 * 2**20
#: the plot formats matplotlib writes
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
_PATH_MAX = 4096
_NAME_MAX = 255

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class PathError(IrqflowError):
    """A file cannot or may not be read or written; the message says why and the fix."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n:,} bytes"


def _read_fd(fd: int, limit: int) -> bytes:
    """Everything in the open file ``fd`` if it is a regular file of at most ``limit``
    bytes.  Closes ``fd``."""
    too_big = PathError(f"is larger than {_size(limit)}, the most irqflow reads")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathError(f"is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise too_big
        data = bytearray()
        while len(data) <= limit:  # the file may have grown since fstat
            chunk = os.read(fd, min(2**20, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise PathError(f"cannot read it: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise too_big
    return bytes(data)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def read_file(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path`` (the user's own: symlinks are followed), a regular file of at
    most ``limit`` bytes; a FIFO is refused without waiting for a writer."""
    name = os.fspath(path)
    if "\0" in name:
        raise PathError("the path contains a NUL character")
    try:
        fd = os.open(name, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise PathError(f"cannot read it: {_reason(exc)}") from None
    return _read_fd(fd, limit)


#: where the files a scenario names are, for messages
INPUTS = "the scenario's directory"
OUTPUTS = "the output directory (the current one, or --out-dir)"


def relative_parts(name: str, below: str) -> tuple[str, ...]:
    """The components of a path a scenario names, which must stay below the directory
    ``below`` describes: relative, without ``..``, NUL or an empty name, each component
    short enough."""
    if not name:
        raise PathError("is empty; name a file")
    if "\0" in name:
        raise PathError("contains a NUL character")
    if PurePosixPath(name).is_absolute() or name.startswith("~"):
        raise PathError(f"is not relative; a scenario names its files relative to {below}")
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise PathError(f"goes up with '..'; a scenario's files stay below {below}")
    if not parts or name.endswith("/"):
        raise PathError("names a directory; name a file")
    if len(os.fsencode(name)) >= _PATH_MAX:
        raise PathError(f"is longer than {_PATH_MAX - 1} bytes")
    for part in parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise PathError(f"has a component longer than {_NAME_MAX} bytes")
    return parts


def check_name(name: str, suffixes: tuple[str, ...] = ()) -> tuple[str, ...]:
    """:func:`relative_parts` of an output a scenario names, which must end in one of
    ``suffixes`` if any are given."""
    _check_suffix(name, suffixes)
    return relative_parts(name, OUTPUTS)


def _check_suffix(name: str, suffixes: tuple[str, ...]) -> None:
    if suffixes and not name.lower().endswith(suffixes):
        raise PathError(f"must end in {', '.join(suffixes)} (the file's format)")


@contextlib.contextmanager
def _parent_fd(base: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """An fd of the directory that holds ``parts[-1]``, reached from ``base`` one
    component at a time without following a symlink."""
    try:
        fd = os.open(base, _DIR_FLAGS)
    except OSError as exc:
        raise PathError(f"cannot open the directory {base}: {_reason(exc)}") from None
    try:
        for i, part in enumerate(parts[:-1]):
            where = "/".join(parts[: i + 1])
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise PathError(f"the directory {where} cannot be used: {_reason(exc)}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise PathError(
                    f"{where} is {_kind(st.st_mode)}, not a directory (symlinks are not followed)"
                )
            try:
                nfd = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise PathError(f"the directory {where} cannot be used: {_reason(exc)}") from None
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def read_beneath(base: Path, name: str, limit: int) -> bytes:
    """The bytes of the file ``name`` below the directory ``base`` (see the module rules)."""
    parts = relative_parts(name, INPUTS)
    with _parent_fd(base, parts) as dfd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | _NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathError("is a symlink; irqflow does not follow them here") from None
            raise PathError(f"cannot read it: {_reason(exc)}") from None
        return _read_fd(fd, limit)


@dataclass(frozen=True)
class Output:
    """A file a command writes after its run.  ``base`` is the output directory for a
    name from a scenario (the rules above apply); None for a path from the command line
    (the user's own, opened as given)."""

    name: str
    base: Path | None = None
    force: bool = False
    #: the endings the file may have (the plot's formats), if only some
    suffixes: tuple[str, ...] = ()

    def check(self) -> None:
        """Everything that can be known before the run; raises :class:`PathError`."""
        _check_suffix(self.name, self.suffixes)
        if self.base is None:
            self._check_given()
        else:
            self._check_beneath(self.base)

    def target(self) -> str:
        """The absolute path the file will have, for telling two outputs apart."""
        base = "." if self.base is None else os.fspath(self.base)
        return os.path.realpath(os.path.join(base, self.name))

    def _check_given(self) -> None:
        name = self.name
        if not name:
            raise PathError("is empty; name a file")
        if "\0" in name:
            raise PathError("contains a NUL character")
        head, tail = os.path.split(name)
        if not tail or tail in (".", ".."):
            raise PathError("names a directory; name a file")
        parent = head or "."
        if not os.path.isdir(parent):
            raise PathError(f"the directory {parent} does not exist")
        if len(os.fsencode(name)) >= _PATH_MAX:
            raise PathError(f"is longer than {_PATH_MAX - 1} bytes")
        if len(os.fsencode(tail)) > _name_max(parent):
            raise PathError(f"the file name is longer than {_name_max(parent)} bytes")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PathError(f"cannot write in the directory {parent}")
        if os.path.isdir(name):
            raise PathError("is a directory; name a file")
        if os.path.exists(name) and not os.access(name, os.W_OK):
            raise PathError("exists and cannot be written")

    def _check_beneath(self, base: Path) -> None:
        parts = relative_parts(self.name, OUTPUTS)
        if not base.is_dir():
            raise PathError(f"the output directory {base} does not exist")
        with _parent_fd(base, parts) as dfd:
            if not os.access(".", os.W_OK | os.X_OK, dir_fd=dfd):
                raise PathError("cannot write in its directory")
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise PathError(f"cannot be used: {_reason(exc)}") from None
            if not stat.S_ISREG(st.st_mode):
                raise PathError(
                    f"exists and is {_kind(st.st_mode)}; irqflow only replaces regular files"
                )
            if not self.force:
                raise PathError("exists; pass --force to replace it, or name another file")

    def write(self, produce: Callable[[str], None]) -> None:
        """Have ``produce(path)`` write the file.  A name from a scenario is produced in a
        private temporary directory, then copied into a file opened with ``O_NOFOLLOW``
        and ``O_EXCL`` (``O_TRUNC`` with ``force``) below ``base``."""
        if self.base is None:
            produce(self.name)
            return
        parts = relative_parts(self.name, OUTPUTS)
        with tempfile.TemporaryDirectory(prefix="irqflow-out-") as tmp:
            made = os.path.join(tmp, "out" + PurePosixPath(parts[-1]).suffix)
            produce(made)
            self._copy(made, self.base, parts)

    def _copy(self, made: str, base: Path, parts: tuple[str, ...]) -> None:
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
        flags |= os.O_TRUNC if self.force else os.O_EXCL
        with _parent_fd(base, parts) as dfd:
            try:
                fd = os.open(parts[-1], flags, 0o666, dir_fd=dfd)
            except FileExistsError:
                raise PathError(
                    "exists; pass --force to replace it, or name another file"
                ) from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PathError("is a symlink; irqflow does not follow them here") from None
                raise PathError(f"cannot be written: {_reason(exc)}") from None
            with os.fdopen(fd, "wb") as out:
                st = os.fstat(out.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise PathError(f"is {_kind(st.st_mode)}; irqflow only writes regular files")
                with open(made, "rb") as src:
                    shutil.copyfileobj(src, out)


def _name_max(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _NAME_MAX
