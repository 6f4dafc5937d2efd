"""Preprocessing QC figures: motion traces and FD per scan, registration overlays.

- :func:`plot_motion_qc`: translations (mm), rotations (degrees) and framewise displacement
  (mm, with the outlier threshold) against frame mid-time (minutes); outlier frames in red,
  an excluded scan says so in the title.
- :func:`plot_registration_qc`: three orthogonal slices of the T1w with the coregistered
  PET mean as a colour overlay (is the PET on the brain?), and of the MNI template with the
  normalized T1w's edges (do the folds and ventricles line up?).

Figures are PNG, written atomically; matplotlib runs headless (Agg).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import map_coordinates

from pipeline.tables import atomic_path

__all__ = ["plot_motion_qc", "plot_registration_qc", "resample_to", "write_preprocess_qc"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_motion_qc(confounds: pd.DataFrame, frame_mid_min: np.ndarray,
                   out_png: str | PathLike, *, fd_threshold_mm: float | None = None,
                   title: str = "", reasons: list[str] | None = None) -> Path:
    """Motion traces and FD of one scan.

    Parameters
    ----------
    confounds : DataFrame
        From :func:`pipeline.preprocess.confounds.motion_confounds` (``trans_*`` mm,
        ``rot_*`` radians, ``framewise_displacement`` mm, optional ``motion_outlier``).
    frame_mid_min : ndarray
        Frame mid-times, minutes.
    out_png : path-like
    fd_threshold_mm : float, default=None
        Drawn as a dashed line.
    title : str, default=""
    reasons : list of str, default=None
        Exclusion reasons; a scan exclusion is shown in the title.
    """
    plt = _pyplot()
    t = np.asarray(frame_mid_min, float)
    fig, axes = plt.subplots(3, 1, figsize=(7.0, 6.0), sharex=True)
    for axis_name, colour in zip("xyz", ("tab:blue", "tab:orange", "tab:green"), strict=True):
        axes[0].plot(t, confounds[f"trans_{axis_name}"], "o-", ms=3, color=colour,
                     label=axis_name)
        axes[1].plot(t, np.degrees(confounds[f"rot_{axis_name}"]), "o-", ms=3, color=colour,
                     label=axis_name)
    axes[0].set_ylabel("translation (mm)")
    axes[1].set_ylabel("rotation (deg)")
    fd = confounds["framewise_displacement"].to_numpy(float)
    axes[2].plot(t, fd, "o-", ms=3, color="k")
    if "motion_outlier" in confounds:
        bad = confounds["motion_outlier"].to_numpy(int) > 0
        axes[2].plot(t[bad], fd[bad], "o", color="red", ms=6, label="excluded frame")
    if fd_threshold_mm is not None:
        axes[2].axhline(fd_threshold_mm, ls="--", color="red", lw=1,
                        label=f"threshold {fd_threshold_mm:g} mm")
    axes[2].set_ylabel("FD (mm)")
    axes[2].set_xlabel("time after injection (min)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    excluded = [r for r in (reasons or []) if "scan excluded" in r]
    fig.suptitle(title + ("\nEXCLUDED: " + "; ".join(r.split(": ", 1)[-1] for r in excluded)
                          if excluded else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, out_png)


def resample_to(volume: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int],
                target_affine: np.ndarray, target_from_source: np.ndarray | None = None
                ) -> np.ndarray:
    """Resample a 3D image onto a target grid (trilinear); ``target_from_source`` maps the
    volume's world points to the target's (identity if None). Zero outside."""
    source_from_target = np.eye(4) if target_from_source is None else np.linalg.inv(
        target_from_source)
    chain = np.linalg.inv(affine) @ source_from_target @ target_affine
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    coords = chain[:3, :3] @ ijk + chain[:3, 3:4]
    return map_coordinates(np.nan_to_num(np.asarray(volume, np.float32)), coords, order=1,
                           mode="constant", cval=0.0).reshape(shape)


def _slices(volume: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    i, j, k = (int(np.rint(c)) for c in centre)
    return [volume[i, :, :].T, volume[:, j, :].T, volume[:, :, k].T]


def _centre(volume: np.ndarray) -> np.ndarray:
    weights = np.clip(volume, 0, None)
    total = weights.sum()
    if total <= 0:
        return (np.asarray(volume.shape) - 1) / 2.0
    return np.array([np.tensordot(weights, np.arange(n), axes=([a], [0])).sum() / total
                     for a, n in enumerate(volume.shape)])


def plot_registration_qc(pet_mean: np.ndarray, pet_affine: np.ndarray, t1: np.ndarray,
                         t1_affine: np.ndarray, t1_from_pet: np.ndarray,
                         t1_in_mni: np.ndarray | None, template: np.ndarray | None,
                         out_png: str | PathLike, *, title: str = "") -> Path:
    """Registration overlays: PET on the T1w, and the normalized T1w on the template.

    Parameters
    ----------
    pet_mean : ndarray (3D)
        Motion-corrected mean PET.
    pet_affine : ndarray of shape (4, 4)
    t1 : ndarray (3D)
    t1_affine : ndarray of shape (4, 4)
    t1_from_pet : ndarray of shape (4, 4)
        Coregistration (PET reference point -> T1w point).
    t1_in_mni, template : ndarray (3D) or None
        The normalized T1w and the template on the MNI grid; None draws the PET row only.
    out_png : path-like
    title : str, default=""
    """
    from scipy.ndimage import sobel

    plt = _pyplot()
    pet_in_t1 = resample_to(pet_mean, pet_affine, t1.shape, t1_affine, t1_from_pet)
    rows = 2 if t1_in_mni is not None and template is not None else 1
    fig, axes = plt.subplots(rows, 3, figsize=(9.0, 3.2 * rows), squeeze=False)
    centre = _centre(t1)
    vmax = float(np.percentile(pet_in_t1[pet_in_t1 > 0], 99.5)) if np.any(pet_in_t1 > 0) else 1
    for ax, anat, pet in zip(axes[0], _slices(t1, centre), _slices(pet_in_t1, centre),
                             strict=True):
        ax.imshow(anat, origin="lower", cmap="gray")
        ax.imshow(np.ma.masked_less_equal(pet, 0.15 * vmax), origin="lower", cmap="hot",
                  alpha=0.45, vmin=0, vmax=vmax)
        ax.set_axis_off()
    axes[0, 0].set_title("PET mean on T1w", fontsize=8, loc="left")
    if rows == 2:
        edges = np.sqrt(sum(sobel(t1_in_mni, axis=a) ** 2 for a in range(3)))
        level = float(np.percentile(edges[edges > 0], 90)) if np.any(edges > 0) else 1.0
        centre = _centre(template)
        for ax, anat, edge in zip(axes[1], _slices(template, centre), _slices(edges, centre),
                                  strict=True):
            ax.imshow(anat, origin="lower", cmap="gray")
            ax.contour(edge, levels=[level], colors="cyan", linewidths=0.5)
            ax.set_axis_off()
        axes[1, 0].set_title("T1w edges (cyan) on the MNI template", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out_png)


def _save(fig, out_png: str | PathLike) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(out_png)


def write_preprocess_qc(confounds_tsv: str | PathLike, mean_pet: str | PathLike,
                        t1w: str | PathLike, coregistration_json: str | PathLike,
                        t1_in_mni: str | PathLike, out_motion_png: str | PathLike,
                        out_registration_png: str | PathLike, *, title: str = "",
                        thresholds=None) -> None:
    """Both QC figures of a preprocessed scan from the step outputs (the ``preprocess_qc``
    step).

    Parameters
    ----------
    confounds_tsv : path-like
        The scan's motion confounds.
    mean_pet : path-like
        Its motion-corrected mean (Bq/mL).
    t1w : path-like
        The subject's T1w.
    coregistration_json : path-like
        The PET -> T1w transform.
    t1_in_mni : path-like
        The T1w normalized to MNI152.
    out_motion_png, out_registration_png : path-like
        The motion traces with FD, and the PET-on-T1w / T1w-on-template overlays.
    title : str, default=""
        Figure title (the scan).
    thresholds : MotionThresholds, default=None
        Drawn on the FD trace, with the frames and reasons they exclude; None uses the
        confounds' own (if any).
    """
    import nibabel as nib

    from pipeline.preprocess.confounds import motion_decision, read_motion
    from pipeline.preprocess.normalize import mni_template
    from pipeline.preprocess.steps import read_coregistration

    table, _, meta = read_motion(confounds_tsv)
    reasons, fd_mm = meta.get("Reasons"), (meta.get("Thresholds") or {}).get("fd_mm")
    if thresholds is not None:
        reasons = motion_decision(table, thresholds, scan=title or "scan").reasons
        fd_mm = thresholds.fd_mm
    mid = (np.asarray(meta["FrameTimesStart"]) + np.asarray(meta["FrameDuration"]) / 2) / 60
    plot_motion_qc(table, mid, out_motion_png, title=title, reasons=reasons,
                   fd_threshold_mm=fd_mm)
    mean, t1, normalized = (nib.load(str(p)) for p in (mean_pet, t1w, t1_in_mni))
    template, template_affine = mni_template(2.0)
    plot_registration_qc(np.asarray(mean.dataobj, np.float32), mean.affine,
                         np.asarray(t1.dataobj, np.float32), t1.affine,
                         read_coregistration(coregistration_json),
                         np.asarray(normalized.dataobj, np.float32),
                         resample_to(template, template_affine, normalized.shape,
                                     normalized.affine), out_registration_png, title=title)
