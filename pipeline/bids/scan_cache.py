"""Scans read at an earlier parse, reused while none of the files they came from has changed.

Every parse of the workflow reads every scan (:func:`pipeline.bids.scan.read_scan`: the
sidecar chain, the checks, the NIfTI header): about 0.45 s for 1,000 scans, paid again by
every cluster job, which parses the Snakefile too. :class:`ScanCache` keeps each scan read
in one file per dataset and hands it back only when the scan would be read the same:

- its sidecar chain is found again on every read (folder listings, as ``read_scan`` does),
  so a sidecar added or removed anywhere up the tree changes the chain and the scan is read;
- every sidecar of the chain is compared by its **content** (a BLAKE2 digest of its bytes,
  read on every parse): an edited sidecar is always read again, whatever its times;
- the image (and a preprocessed image) is compared by size, modification and change times
  (ns), inode and device: any write, replacement or new symlink target changes one of
  them. An image changed within the last :data:`RACY_SECONDS` when it is looked at is not
  stored (a later write in the same clock tick could keep its times, as git handles
  "racily clean" files);
- the entry is also keyed by the dataset root, the preprocessed image's sidecar, petbp's
  version and the size and modification time of the modules that read a scan, so a changed
  reader never returns a scan it would read differently.

Only scans that were read without error are stored; a scan that fails is read (and fails)
on every parse.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.bids.entities import parse_name
from pipeline.bids.scan import Scan, read_scan
from pipeline.bids.sidecars import infer_root, sidecar_chain

if TYPE_CHECKING:
    from pipeline.bids.preprocessed import PreprocImage

__all__ = ["RACY_SECONDS", "ScanCache"]

#: An image whose modification or change time is this recent (s) when it is looked at is
#: read but not stored.
RACY_SECONDS = 2.0
#: Bumped when the cache file's layout changes.
_FORMAT = 1
#: The modules whose code decides what a scan read from its files is.
_READERS = ("scan.py", "sidecars.py", "headers.py", "entities.py", "preprocessed.py",
            "scan_cache.py", "../frames.py", "../__init__.py")


def _code_key() -> tuple:
    from pipeline import __version__

    here = Path(__file__).parent
    stats = []
    for name in _READERS:
        st = os.stat(here / name)
        stats.append((name, st.st_size, st.st_mtime_ns))
    return (_FORMAT, __version__, tuple(stats))


def _image_key(path: Path, now_ns: int) -> tuple[tuple, bool]:
    """(size, times, inode, device) of an image, and whether it changed too recently."""
    st = os.stat(path)
    recent = now_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_SECONDS * 1e9
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev), recent


def _content_key(path: Path) -> tuple[str, str]:
    return str(path), hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


class ScanCache:
    """Scans of one dataset read at earlier parses, in ``folder`` (see the module notes).

    Parameters
    ----------
    folder : path-like
        Where the cache file lives (the workflow: ``.snakemake/petbp/scans`` of Snakemake's
        working directory); created when the cache is first saved.
    bids_root : path-like
        The dataset root (one cache file per root and ``preproc_dir``).
    preproc_dir : path-like, default=None
        The derivatives folder of the preprocessed images, if any.
    """

    def __init__(self, folder: str | PathLike, bids_root: str | PathLike,
                 preproc_dir: str | PathLike | None = None) -> None:
        where = f"{Path(bids_root).resolve()}\n{Path(preproc_dir).resolve() if preproc_dir else ''}"
        digest = hashlib.blake2b(where.encode(), digest_size=8).hexdigest()
        self.path = Path(folder) / f"scans-{digest}.pickle"
        self.code = _code_key()
        self.entries: dict[str, tuple[tuple, Scan]] = {}
        self.seen: set[str] = set()
        self.changed = False
        self.hits = 0
        try:
            with open(self.path, "rb") as stream:
                code, entries = pickle.load(stream)
            if code == self.code:
                self.entries = entries
        except Exception:  # no cache yet, or unreadable: every scan is read
            self.entries = {}

    def read(self, image_path: str | PathLike, bids_root: str | PathLike | None = None, *,
             preproc: PreprocImage | None = None, listings: dict | None = None) -> Scan:
        """:func:`pipeline.bids.scan.read_scan`, or the same scan from the cache.

        Parameters are those of :func:`~pipeline.bids.scan.read_scan`.

        Raises
        ------
        InputError
            As :func:`~pipeline.bids.scan.read_scan` (a scan that cannot be read is never
            cached).
        """
        image_path = Path(image_path)
        try:
            key, recent = self._key(image_path, bids_root, preproc, listings)
        except Exception:  # anything odd (missing file, bad name): read_scan says what
            return read_scan(image_path, bids_root, preproc=preproc, listings=listings)
        name = str(image_path)
        self.seen.add(name)
        cached = self.entries.get(name)
        if cached is not None and cached[0] == key:
            self.hits += 1
            return cached[1]
        scan = read_scan(image_path, bids_root, preproc=preproc, listings=listings)
        if recent:
            if self.entries.pop(name, None) is not None:
                self.changed = True
        else:
            self.entries[name] = (key, scan)
            self.changed = True
        return scan

    def _key(self, image_path: Path, bids_root: str | PathLike | None,
             preproc: PreprocImage | None, listings: dict | None) -> tuple[tuple, bool]:
        """Everything the scan read from ``image_path`` depends on; looked at *before* the
        scan is read, so a file changed while it is read is read again next time."""
        root = Path(bids_root) if bids_root is not None else infer_root(image_path)
        chain = sidecar_chain(image_path, root, parse_name(image_path), listings)
        now = time.time_ns()
        image, recent = _image_key(image_path, now)
        parts: list[Any] = [str(root), image, tuple(_content_key(p) for p in chain)]
        if preproc is not None:
            derived, recent_preproc = _image_key(preproc.image, now)
            parts += [derived, _content_key(preproc.sidecar) if preproc.sidecar else None,
                      preproc.space]
            recent = recent or recent_preproc
        return tuple(parts), recent

    def save(self) -> None:
        """Write the scans of this discovery (only those seen; atomically), if any changed."""
        stale = set(self.entries) - self.seen
        if not self.changed and not stale:
            return
        entries = {k: v for k, v in self.entries.items() if k in self.seen}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as stream:
                pickle.dump((self.code, entries), stream, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except OSError:  # a read-only working directory: no cache, nothing else changes
            return
