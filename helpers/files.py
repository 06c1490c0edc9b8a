"""Writing files whole: a reader, or a crash, never sees half of one.

Every file the package writes (JSON summaries, cache entries, checkpoints,
figures, executed notebooks) goes through write_atomically: the bytes go to a
temporary file in the target's folder, are forced to disk, and the temporary
file is renamed over the target. os.replace is atomic within one file system,
so the target holds either its old content or all of the new, even if the
process is killed or the disk fills up midway.

check_writable_file and check_writable_folder say, before any work starts,
whether a path given for the results can be written at all: a run of an
hour must not be lost to a typo in an output path.

append_line and read_lines keep a JSON-lines file that several processes
append to (the search's runs.jsonl): whole lines only, never mixed.
"""

import fcntl
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError, HelpersError, OutputError

REPO = Path(__file__).resolve().parents[1]


def write_atomically(path, data: bytes):
    """Write data (bytes, or any bytes-like object) to path through a temporary
    file and a rename; create path's folder if needed.

    On any error, Ctrl-C included, the temporary file is removed and path is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random name: two processes writing the same file at once must not share a temporary.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 gives the file the permissions the umask allows,
    # as open() would; tempfile.mkstemp would make it readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def shown_path(path):
    """path relative to the repository when it is inside it, else absolute, as a string.

    For paths written into results that may be committed (the data folder of
    a run, say): a reader's clone is elsewhere, and a home folder is nobody's business.
    """
    path = Path(path).resolve()
    return (path.relative_to(REPO) if path.is_relative_to(REPO) else path).as_posix()


def write_json(path, obj):
    """Write obj to path as indented JSON, atomically."""
    write_atomically(path, (json.dumps(obj, indent=1) + "\n").encode())


def sync_folder(folder):
    """Force a folder's entries to disk: without it, a rename may be lost in a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable_file(path, flag, size=0):
    """Refuse a file path that write_atomically could not write, naming flag (e.g. "--json").

    The file and its folders need not exist yet; it is enough that they can
    be created. size: the bytes the file will take, if known, so that a disk
    too full for it is refused too.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the path of a file in it, e.g. {path / 'out'}.")
    if path.exists() and not path.is_file():
        # Replacing a device or a pipe (/dev/null) with a regular file would break it for everyone.
        raise ConfigError(f"{flag} {path} is not a regular file; give the path of a file to write.")
    _check_folder(path.parent, flag, size, path)


def check_writable_folder(folder, flag, size=0):
    """Refuse a folder that cannot be created, or in which no file can be written, naming flag."""
    _check_folder(Path(folder), flag, size, Path(folder))


def _check_folder(folder, flag, size, target):
    """Refuse folder, where target (folder, or a file in it) is to be written."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the nearest folder that exists; the rest will be created
    if not existing.is_dir():
        raise ConfigError(f"{flag}: cannot create {target}: {existing} is a file, not a folder. Choose another path.")
    try:
        tempfile.TemporaryFile(dir=existing).close()  # the only sure test: write a file there
    except OSError as err:
        raise ConfigError(
            f"{flag}: cannot create files in {existing} ({err.strerror or err}). Choose a folder you can write to."
        ) from None
    free = shutil.disk_usage(existing).free
    if size > free:
        raise ConfigError(
            f"{flag}: {target} needs about {size / 1e6:,.0f} MB, but {existing} has only {free / 1e6:,.0f} MB free."
            " Free some space or choose another folder."
        )


def check_output_files(args, **sizes):
    """Refuse the output files args.<flag>, for each flag of sizes, that could not be written once the work is done.

    sizes: the bytes each file will take, if known (else 0).
    """
    given = {flag: getattr(args, flag) for flag in sizes if getattr(args, flag)}
    for flag, path in given.items():
        check_writable_file(path, f"--{flag}", sizes[flag])
    if len(given) > len({Path(path).resolve() for path in given.values()}):
        raise ConfigError(f"{' and '.join(f'--{flag}' for flag in given)} name the same file; give each its own.")


def write_outputs(outputs):
    """Write each (flag, path, write) in turn; one that fails (a full disk) does not stop the others.

    Returns the paths written; raises OutputError naming the outputs that failed.
    """
    written, failed = [], []
    for flag, path, write in outputs:
        try:
            write()
            written.append(path)
        except OSError as err:
            failed.append(f"{flag} {path} ({err.strerror or err})")
    if failed:
        kept = f"; wrote {', '.join(map(str, written))}" if written else ""
        raise OutputError(f"could not write {' and '.join(failed)}{kept}. Free some space, or choose another path.")
    return written


def append_line(path, obj):
    """Append obj to path as one JSON line, whole, even with several writers or a crash.

    A writer holds an exclusive lock (flock) on the file while it writes, so
    lines from two processes never mix. A writer killed mid-line leaves a last
    line without its newline; the next writer cuts it off before appending
    (read_lines ignores it meanwhile). fsync: once this returns, the line
    survives a crash of the machine too.
    """
    line = (json.dumps(obj) + "\n").encode()
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_lines(path):
    """The JSON objects of the whole lines of path; [] if it does not exist.

    A last line without its newline is a write cut short (see append_line)
    and is ignored. A whole line that is not JSON raises HelpersError.
    """
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    *lines, _torn_or_empty = content.split(b"\n")
    objects = []
    for number, line in enumerate(lines, 1):
        try:
            objects.append(json.loads(line))
        except ValueError as err:
            raise HelpersError(
                f"{path}, line {number}, is not a JSON record ({err}); the file was damaged "
                "by something other than the code that appends to it. Delete that line, or move the file away to start afresh."
            ) from err
    return objects
