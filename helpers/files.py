"""Writing files whole: a reader, or a crash, never sees half of one.

Every file the package writes (JSON summaries, cache entries, checkpoints,
figures, executed notebooks) goes through write_atomically: the bytes go to a
temporary file in the target's folder, are forced to disk, and the temporary
file is renamed over the target. os.replace is atomic within one file system,
so the target holds either its old content or all of the new, even if the
process is killed or the disk fills up midway.
"""

import json
import os
import secrets
from pathlib import Path


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

