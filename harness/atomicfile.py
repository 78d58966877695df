"""Write report files so a reader never sees half of one and a failure leaves no temp file.

Each file goes to a temporary name in its own directory and is renamed over the target;
`write_texts_atomic` writes every temporary first and renames them only when all were written,
so a full disk or a file-size limit leaves the previous report whole instead of a mixed folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def _temp_for(path: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def write_texts_atomic(files: Mapping[Path, str]) -> None:
    """Write every file, all or none (up to the renames, which do not fail on one file system)."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            temps.append((_temp_for(Path(path), text), Path(path)))
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for tmp, path in temps:
        os.replace(tmp, path)


def write_text_atomic(path: Path | str, text: str) -> None:
    write_texts_atomic({Path(path): text})
