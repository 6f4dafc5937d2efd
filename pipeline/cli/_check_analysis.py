"""The checks of ``petbp check`` that ask "can the *configured* analysis run on this scan?".

Beyond BIDS validity (``pipeline.bids``), each scan is checked against what the config asks
of it:

* header orientation: sform and qform must agree (left and right must not be ambiguous);
* each condition window must lie inside the acquisition and hold enough frames for every
  configured model (after its t*), and the first frame must be early enough and gaps short
  enough for models that integrate from injection;
* every region of the region config, the reference first, must lie inside the field of view
  with signal (finite, non-zero) in most of its voxels.

Each function returns problem messages (``format_problem``: file, what, fix); an empty list
means the scan passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import format_problem
from pipeline.kinetics.registry import MODELS

__all__ = [
    "INTEGRATING_MODELS",
    "MAX_GAP_MIN",
    "MIN_FRAMES",
    "MIN_REGION_COVERAGE",
    "frame_problems",
    "orientation_problems",
    "region_problems",
]

#: Fewest frames each model fits (the registry's ``min_frames``).
MIN_FRAMES = {name: spec.min_frames for name, spec in MODELS.items()}
#: Models that integrate the TACs from injection (all but the equilibrium ratio).
INTEGRATING_MODELS = frozenset(name for name, spec in MODELS.items()
                               if spec.integrates_from_injection)
#: Longest gap between frames (minutes) over which the models' integrals are validated
#: (pipeline.kinetics._reference: 10-min gaps bias BP_ND by < 0.1 %).
MAX_GAP_MIN = 10.0
#: Minutes a condition window may reach past the acquisition (rounded frame schedules).
WINDOW_SLACK_MIN = 1.0
#: Smallest fraction of a region's voxels that must hold signal.
MIN_REGION_COVERAGE = 0.5
#: sform and qform agree when every element of the two affines is this close (mm).
AFFINE_TOLERANCE_MM = 0.01


def orientation_problems(image_path: str | Path) -> list[str]:
    """Problems with the header's orientation fields (sform, qform) of one image."""
    import nibabel as nib

    header = nib.load(str(image_path)).header
    if not hasattr(header, "get_sform"):
        return []
    s_code, q_code = int(header["sform_code"]), int(header["qform_code"])
    fix_copy = ("Make the two agree: copy the correct one over the other (fslorient "
                "-copysform2qform, or nibabel img.set_qform(img.get_sform())), after checking "
                "which one is right against an anatomical landmark.")
    if s_code == 0 and q_code == 0:
        return [format_problem(
            image_path, "the header has no orientation (sform_code and qform_code are both "
            "0): left and right are ambiguous", "Write the image with its MNI152 affine and "
            "sform_code 4 (MNI) or 2 (aligned).")]
    if s_code == 0 or q_code == 0:
        return []
    sform, qform = header.get_sform(), header.get_qform()
    if np.sign(np.linalg.det(sform[:3, :3])) != np.sign(np.linalg.det(qform[:3, :3])):
        return [format_problem(
            image_path, "sform and qform disagree on left and right (their determinants "
            "have opposite signs): readers that use the qform see a mirrored brain", fix_copy)]
    if not np.allclose(sform, qform, atol=AFFINE_TOLERANCE_MM, rtol=0):
        diff = float(np.abs(sform - qform).max())
        return [format_problem(
            image_path, f"sform and qform disagree (by up to {diff:.3g} mm): readers differ "
            "on where the brain is", fix_copy)]
    return []


def _model_settings(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every model the config runs on each condition window -> its options."""
    models = {name: dict(options or {}) for name, options in
              (config.get("models") or {}).items()}
    voxelwise = config.get("voxelwise") or {}
    if voxelwise.get("enabled", True) and voxelwise.get("model"):
        models.setdefault(f"{voxelwise['model']} (voxelwise)",
                          dict(voxelwise.get("options") or {}))
    return models


def frame_problems(scan: Any, config: Mapping[str, Any], windows: Mapping[str, Any]
                   ) -> list[str]:
    """Can the configured models use this scan's frames in its condition windows?

    Parameters
    ----------
    scan : Scan
        The scan (frames in minutes after injection, ``sidecar_path``).
    config : mapping
        The validated config (``models``, ``voxelwise``, ``k2prime``).
    windows : mapping
        Condition name -> (start, end) minutes or None (whole scan), for the conditions the
        scan holds.
    """
    frames = scan.frames
    where = scan.sidecar_path
    first, last = float(frames.start[0]), float(frames.end[-1])
    problems = []
    models = _model_settings(config)
    integrating = sorted(m for m in models if m.split(" ")[0] in INTEGRATING_MODELS)
    from pipeline.kinetics.srtm import MAX_FIRST_FRAME_START

    if integrating and first > MAX_FIRST_FRAME_START:
        problems.append(format_problem(
            where, f"the first frame of {scan.stem} starts {first:g} min after injection, but "
            f"{', '.join(integrating)} integrate the TACs from injection and need the scan to "
            f"start within {MAX_FIRST_FRAME_START:g} min", "Check InjectionStart and "
            "FrameTimesStart (seconds), merge the frames of all acquisitions of this "
            "injection into one scan, or configure only the ratio model."))
    gaps = frames.start[1:] - frames.end[:-1]
    if integrating and gaps.size and gaps.max() > MAX_GAP_MIN:
        i = int(gaps.argmax())
        problems.append(format_problem(
            where, f"{gaps[i]:g} min gap between frames {i + 1} and {i + 2} of {scan.stem}; "
            f"the integrals of {', '.join(integrating)} are validated across gaps up to "
            f"{MAX_GAP_MIN:g} min", "Check FrameTimesStart and FrameDuration (seconds), or "
            "exclude the scan (selection.exclude_*)."))
    for name, window in windows.items():
        if window is None:
            continue
        start, end = float(window[0]), float(window[1])
        if end > last + WINDOW_SLACK_MIN or start < first - WINDOW_SLACK_MIN:
            problems.append(format_problem(
                where, f"condition {name!r} uses minutes {start:g}-{end:g}, outside the "
                f"acquisition of {scan.stem} ({first:g}-{last:g} min)",
                f"Fix design.conditions.{name}.window (minutes after injection) or the frame "
                "times; a window must lie within the scan."))
            continue
        for model, options in models.items():
            problems += _too_few(scan, name, (start, end), model, options)
    k2 = config.get("k2prime") or {}
    if any(o.get("k2prime") == "shared" for o in models.values()):
        window = k2.get("window")
        used = frames.in_window(*(window or (None, None)))
        need = MIN_FRAMES.get(k2.get("model", "srtm"), 4)
        if int(used.sum()) < need:
            problems.append(format_problem(
                where, f"the shared k2' window {window} holds {int(used.sum())} frame(s) of "
                f"{scan.stem}; {k2.get('model', 'srtm')} needs at least {need}",
                "Widen k2prime.window (minutes) in the config."))
    return problems


def _too_few(scan: Any, condition: str, window: tuple[float, float], model: str,
             options: Mapping[str, Any]) -> list[str]:
    """A problem when ``model`` has too few frames to fit in a condition window."""
    frames = scan.frames
    used = frames.in_window(*window)
    t_star = options.get("t_star")
    if t_star is not None:
        used &= frames.mid >= float(t_star)
    need = MIN_FRAMES.get(model.split(" ")[0], 3)
    if int(used.sum()) >= need:
        return []
    after = f" at or after t* = {t_star:g} min" if t_star is not None else ""
    return [format_problem(
        scan.sidecar_path, f"condition {condition!r} ({window[0]:g}-{window[1]:g} min) holds "
        f"{int(used.sum())} frame(s) of {scan.stem}{after}; {model} needs at least {need}",
        "Widen the window, lower the model's t_star, or acquire shorter frames.")]


def region_problems(scan: Any, data: np.ndarray, masks: Any) -> list[str]:
    """Regions (the reference first) outside the field of view or without signal.

    Parameters
    ----------
    scan : Scan
        The scan (its image path is named).
    data : ndarray of shape (x, y, z, n_frames)
        The image, as loaded.
    masks : RegionMasks
        The region config's masks on the image grid (:func:`pipeline.regions.build_masks`).
    """
    valid = np.all(np.isfinite(data), axis=-1) & np.any(data != 0, axis=-1)
    order = sorted(range(len(masks.names)), key=lambda i: masks.names[i] != masks.reference)
    problems = []
    for i in order:
        name = masks.names[i]
        weight = np.asarray(masks.weights[i], float)
        total = float(weight.sum())
        outside = float(masks.outside_fov_fraction[i])  # of the region's whole weight
        covered = float((weight * valid).sum()) / total * (1.0 - outside) if total > 0 else 0.0
        if covered < MIN_REGION_COVERAGE:
            role = "the reference region" if name == masks.reference else "region"
            problems.append(format_problem(
                scan.image_path, f"{role} {name!r} has signal in {100 * covered:.0f}% of its "
                f"voxels (needs {100 * MIN_REGION_COVERAGE:.0f}%): it lies outside the field "
                "of view, or the image is zero or NaN there", "Check the image's field of view "
                "and registration to MNI152 (petbp regions --image IMAGE --qc regions.png), or "
                "remove the region from the region config."))
    return problems
