"""Tiny BIDS-PET datasets written on demand, for tests of every stage.

``make_bids(tmp_path)`` writes a valid dataset (2 subjects x 2 tasks, 5 frames, 6x6x6 voxels
of 36 mm that cover the MNI brain) and returns its root; keyword arguments change any part
of it, so a test can break exactly one thing::

    root = make_bids(tmp_path, sidecar={"Units": "furlongs"})
    root = make_bids(tmp_path, subjects=["01"], sessions=["1", "2"], gzip=False)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

__all__ = [
    "DEFAULT_AFFINE",
    "FRAME_DURATIONS_S",
    "frame_starts",
    "make_bids",
    "make_preproc",
    "scan_files",
    "write_image",
    "write_sidecar",
]

#: 5 frames over 20 min, seconds (as in a sidecar).
FRAME_DURATIONS_S = [60.0, 120.0, 300.0, 360.0, 360.0]
#: 36 mm voxels: a 6x6x6 grid spans x -108..108, y -126..90, z -72..144 mm (the MNI brain).
DEFAULT_AFFINE = np.array([[36.0, 0, 0, -90], [0, 36.0, 0, -108], [0, 0, 36.0, -54], [0, 0, 0, 1]])


def frame_starts(durations: Sequence[float]) -> list[float]:
    """Contiguous frame starts (seconds) for the given durations."""
    return [0.0, *np.cumsum(durations)[:-1].tolist()]


def write_image(path: Path, data: np.ndarray, affine: np.ndarray = DEFAULT_AFFINE) -> Path:
    """Write ``data`` as NIfTI-1 (gzip if the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
    return path


def write_sidecar(path: Path, fields: Mapping[str, Any]) -> Path:
    """Write a JSON sidecar; values equal to ``...`` (Ellipsis) are left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in fields.items() if v is not ...}, indent=1))
    return path


def _default_data(shape: Sequence[int], n_frames: int, sub_index: int) -> np.ndarray:
    """Positive activity, kBq/mL-sized: a smooth spatial pattern times a rising-falling TAC."""
    grid = np.indices(shape).sum(axis=0).astype(np.float32)
    tac = np.linspace(1.0, 3.0, n_frames) * np.exp(-np.linspace(0, 1, n_frames))
    return (1.0 + 0.1 * grid[..., None] + 0.05 * sub_index) * tac.astype(np.float32)


def make_bids(
    root: Path,
    *,
    subjects: Sequence[str] = ("01", "02"),
    sessions: Sequence[str] | None = None,
    tasks: Sequence[str | None] = ("rejection", "acceptance"),
    runs: Sequence[str] | None = None,
    shape: Sequence[int] = (6, 6, 6),
    durations: Sequence[float] = FRAME_DURATIONS_S,
    units: str = "kBq/mL",
    decay_corrected: bool = True,
    radionuclide: str = "C11",
    tracer: str = "carfentanil",
    sidecar: Mapping[str, Any] | Callable[[str], Mapping[str, Any]] | None = None,
    data: Callable[[str, tuple], np.ndarray] | None = None,
    affine: np.ndarray = DEFAULT_AFFINE,
    gzip: bool = True,
    participants: Mapping[str, Sequence[Any]] | str | bool = True,
    dataset_description: bool = True,
) -> Path:
    """Write a BIDS-PET dataset under ``root`` and return ``root``.

    Parameters
    ----------
    root : Path
        Folder to write into (created).
    subjects, sessions, tasks, runs : sequence of str
        Labels; one scan per combination. ``sessions``/``runs`` None leaves the entity out,
        a task of None leaves ``task-`` out.
    shape : sequence of int
        Spatial dimensions; frames are added as the 4th.
    durations : sequence of float
        Frame durations, seconds; frames are contiguous from 0.
    units, decay_corrected, radionuclide, tracer
        Sidecar ``Units``, ``ImageDecayCorrected``, ``TracerRadionuclide``, ``TracerName``.
    sidecar : mapping or callable, default=None
        Fields to add or replace in every sidecar, or ``f(stem) -> fields`` per scan. A
        value of ``...`` removes the field.
    data : callable, default=None
        ``f(stem, shape4d) -> ndarray`` for the image data (in ``units``); default is a
        smooth positive pattern.
    affine : ndarray of shape (4, 4)
        Voxel-to-mm transform of every image.
    gzip : bool, default=True
        Write ``.nii.gz`` (else ``.nii``).
    participants : mapping, str, or bool, default=True
        True writes ``participant_id``, ``resilience``, ``age``, ``sex`` for the subjects;
        a mapping gives the columns (``participant_id`` included); a str is written
        verbatim as the file's text; False writes no file.
    dataset_description : bool, default=True
        Write ``dataset_description.json``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if dataset_description:
        write_sidecar(root / "dataset_description.json",
                      {"Name": "petbp test", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    for index, sub in enumerate(subjects):
        for ses in sessions or [None]:
            for task in tasks:
                for run in runs or [None]:
                    entities = [f"sub-{sub}"]
                    entities += [f"ses-{ses}"] if ses is not None else []
                    entities += [f"task-{task}"] if task is not None else []
                    entities += [f"run-{run}"] if run is not None else []
                    stem = "_".join(entities)
                    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "pet"
                    fields: dict[str, Any] = {
                        "Modality": "PET", "TracerName": tracer,
                        "TracerRadionuclide": radionuclide, "Units": units,
                        "ImageDecayCorrected": decay_corrected,
                        "ImageDecayCorrectionTime": 0, "InjectionStart": 0,
                        "FrameTimesStart": frame_starts(durations),
                        "FrameDuration": list(map(float, durations)),
                    }
                    extra = sidecar(stem) if callable(sidecar) else (sidecar or {})
                    fields.update(extra)
                    write_sidecar(folder / f"{stem}_pet.json", fields)
                    shape4d = (*tuple(shape), len(durations))
                    values = data(stem, shape4d) if data else \
                        _default_data(shape, len(durations), index)
                    write_image(folder / f"{stem}_pet.nii{'.gz' if gzip else ''}", values, affine)
    if participants is True:
        participants = {
            "participant_id": [f"sub-{s}" for s in subjects],
            "resilience": [40.0 + 3 * i for i in range(len(subjects))],
            "age": [25 + i for i in range(len(subjects))],
            "sex": ["F" if i % 2 else "M" for i in range(len(subjects))],
        }
    if isinstance(participants, str):
        (root / "participants.tsv").write_text(participants)
    elif participants:
        columns = list(participants)
        lines = ["\t".join(columns)]
        lines += ["\t".join("n/a" if v is None else str(v) for v in row)
                  for row in zip(*(participants[c] for c in columns), strict=True)]
        (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    return root


def scan_files(root: Path, pattern: str = "*") -> list[Path]:
    """The PET images under ``root`` whose name matches ``pattern``, sorted."""
    return sorted(p for p in Path(root).glob(f"sub-*/**/pet/{pattern}_pet.nii*"))


def make_preproc(bids_root: Path, dest: Path, *, space: str = "MNI152NLin2009cAsym",
                 sidecars: bool = True, description: Mapping[str, Any] | None = None) -> Path:
    """A PETPrep-style derivatives copy of ``bids_root``'s images under ``dest``.

    Each ``<stem>_pet.nii[.gz]`` becomes ``<stem>_space-<space>_desc-preproc_pet.nii.gz``
    with the same bytes (so results must equal the raw dataset's); ``sidecars`` copies the
    timing fields into the derivative's own sidecar; ``description`` replaces the
    ``dataset_description.json`` (default: a derivative made by PETPrep).
    """
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    write_sidecar(dest / "dataset_description.json", description if description is not None
                  else {"Name": "petprep", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                        "GeneratedBy": [{"Name": "PETPrep", "Version": "0.0.1"}]})
    for image in sorted(bids_root.glob("sub-*/**/pet/*_pet.nii*")):
        stem = image.name.split("_pet.nii")[0]
        ext = image.name[len(stem) + len("_pet"):]
        target = dest / image.parent.relative_to(bids_root) / \
            f"{stem}_space-{space}_desc-preproc_pet{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
        raw_sidecar = image.with_name(f"{stem}_pet.json")
        if sidecars and raw_sidecar.is_file():
            fields = json.loads(raw_sidecar.read_text())
            write_sidecar(target.with_name(f"{stem}_space-{space}_desc-preproc_pet.json"),
                          {k: fields[k] for k in ("FrameTimesStart", "FrameDuration")
                           if k in fields})
    return dest
