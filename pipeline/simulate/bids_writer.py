"""Write a simulated study as a BIDS-PET dataset, byte for byte reproducible.

Images are gzip-compressed NIfTI-1 with the gzip timestamp and file name fields fixed
(``mtime=0``; level 1, since noisy data barely compress further), stored as int16 with a
scale factor chosen by nibabel (the quantization step is ~1/30000 of the scan's maximum,
far below the noise). Sidecars carry every REQUIRED
BIDS-PET field plus the RECOMMENDED ones petbp uses (``DecayCorrectionFactor``, infusion
fields of a bolus + infusion). No file holds a creation time, so the same seed gives the
same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.frames import Frames, decay_correction_factors
from pipeline.tables import atomic_path, write_json, write_table

__all__ = [
    "CARFENTANIL_MOLECULAR_WEIGHT",
    "pet_sidecar",
    "write_dataset_description",
    "write_nifti",
    "write_participants",
]

#: g/mol of carfentanil (C24H30N2O3).
CARFENTANIL_MOLECULAR_WEIGHT = 394.5

_BIDS_VERSION = "1.9.0"


def write_nifti(path: str | PathLike, data: np.ndarray, affine: np.ndarray, *,
                dtype: type = np.int16, xform_code: int = 4) -> Path:
    """Write a NIfTI-1 image (``.nii.gz``) reproducibly, atomically.

    Parameters
    ----------
    path : path-like
        Target ``.nii.gz``.
    data : ndarray
        Image data (float); stored as ``dtype`` with nibabel's scale factor.
    affine : ndarray of shape (4, 4)
        Voxel -> world mm; written as sform and qform with code ``xform_code``.
    dtype : numpy dtype, default=numpy.int16
    xform_code : int, default=4
        NIfTI xform code: 4 = MNI152 (the default, images on the MNI grid), 1 = scanner
        anatomical coordinates (raw scanner-space images).
    """
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=xform_code)
    img.set_qform(affine, code=xform_code)
    raw = img.to_bytes()
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle, \
            gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0,
                          compresslevel=1) as stream:
        stream.write(raw)
    return path


def pet_sidecar(frames: Frames, *, task: str, protocol: str, dose_mbq: float,
                kbol: float | None, half_life: float, psf_fwhm: float,
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``_pet.json`` of one simulated scan (times in seconds, activity Bq/mL).

    Parameters
    ----------
    frames : Frames
        Minutes; written as seconds.
    task : str
    protocol : {"bolus", "bolus-infusion"}
    dose_mbq : float
        Total injected radioactivity (bolus + infusion), MBq.
    kbol : float or None
        Bolus-to-infusion ratio, minutes.
    half_life : float
        Minutes.
    psf_fwhm : float
        Simulated scanner resolution, mm.
    extra : mapping, default=None
        More fields (e.g. ``TaskDescription``).
    """
    mass_ug = 1.2 * dose_mbq / 555.0             # ~0.017 ug/kg at 70 kg: a tracer dose
    end_s = float(frames.end_seconds[-1])
    sidecar: dict[str, Any] = {
        "Modality": "PT",
        "Manufacturer": "petbp simulator",
        "ManufacturersModelName": "petbp study simulator",
        "BodyPart": "Brain",
        "Units": "Bq/mL",
        "TaskName": task,
        "TracerName": "carfentanil",
        "TracerRadionuclide": "C11",
        "TracerMolecularWeight": CARFENTANIL_MOLECULAR_WEIGHT,
        "TracerMolecularWeightUnits": "g/mol",
        "InjectedRadioactivity": round(float(dose_mbq), 3),
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": round(mass_ug, 4),
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": round(float(dose_mbq) / mass_ug, 3),
        "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": protocol,
        "TimeZero": "10:00:00",
        "ScanStart": 0,
        "InjectionStart": 0,
        "FrameTimesStart": [round(float(v), 3) for v in frames.start_seconds],
        "FrameDuration": [round(float(v), 3) for v in frames.end_seconds - frames.start_seconds],
        "AcquisitionMode": "list mode",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "DecayCorrectionFactor": [round(float(v), 6)
                                  for v in decay_correction_factors(frames, half_life)],
        "ReconMethodName": "simulated 3D OSEM (Gaussian PSF blur and count-following noise)",
        "ReconMethodParameterLabels": ["subsets", "iterations"],
        "ReconMethodParameterUnits": ["none", "none"],
        "ReconMethodParameterValues": [16, 4],
        "ReconFilterType": "none",
        "ReconFilterSize": 0,
        "AttenuationCorrection": "simulated data (not applicable)",
        "SpatialResolution": f"isotropic Gaussian PSF, FWHM {psf_fwhm:g} mm",
    }
    if protocol == "bolus-infusion":
        kbol = float(kbol)
        infusion_min = end_s / 60.0
        infused = dose_mbq * infusion_min / (kbol + infusion_min)
        sidecar.update({
            "InfusionRadioactivity": round(infused, 3),
            "InfusionStart": 0,
            "InfusionSpeed": round(infused / end_s, 6),
            "InfusionSpeedUnits": "MBq/s",
            "InjectedVolume": 10,
            "InjectedVolumeUnits": "mL",
            "BolusToInfusionRatio": kbol,
            "BolusToInfusionRatioUnits": "min",
        })
    if extra:
        sidecar.update(extra)
    return sidecar


def write_dataset_description(bids_dir: str | PathLike, *, name: str,
                              description: str) -> Path:
    """``dataset_description.json`` and a short ``README`` of a simulated dataset.

    Parameters
    ----------
    bids_dir : str or path-like
        The dataset root.
    name : str
        The dataset's ``Name``.
    description : str
        The README text.
    """
    from pipeline import __version__

    root = Path(bids_dir)
    write_json(root / "dataset_description.json", {
        "Name": name,
        "BIDSVersion": _BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["petbp simulator"],
        "GeneratedBy": [{"Name": "petbp", "Version": __version__,
                         "Description": "pipeline.simulate.simulate_study"}],
    })
    with atomic_path(root / "README") as tmp:
        tmp.write_text(description.strip() + "\n")
    return root / "dataset_description.json"


def write_participants(bids_dir: str | PathLike, participants: pd.DataFrame,
                       extra_columns: Mapping[str, Any] | None = None) -> Path:
    """``participants.tsv`` and ``participants.json`` (column descriptions; ``extra_columns``
    adds entries, e.g. for a ``group`` column).

    Parameters
    ----------
    bids_dir : str or path-like
        The dataset root.
    participants : DataFrame
        One row per participant (``participant_id`` first).
    extra_columns : mapping, default=None
        Column -> description entry of ``participants.json`` for further columns.
    """
    root = Path(bids_dir)
    path = write_table(root / "participants.tsv", participants)
    write_json(root / "participants.json", {
        "participant_id": {"Description": "Participant label, sub-<label>."},
        "age": {"Description": "Age at the scans.", "Units": "year"},
        "sex": {"Description": "Sex.", "Levels": {"F": "female", "M": "male"}},
        "resilience": {"Description": "Ego-resiliency (ER89-like total of 14 items scored "
                       "1-4; simulated).", "Units": "points (14-56)"},
        **dict(extra_columns or {}),
    })
    return path
