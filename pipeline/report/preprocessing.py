"""Per-scan QC of preprocessed (scanner-space) scans: motion and registration.

For a scan that went through :mod:`pipeline.preprocess`, the scan's block in the report
gets its head-motion summary (largest framewise displacement and displacement from the
reference, frames left out and why), the motion-trace figure and the registration
overlays (PET on its T1w, the T1w on the MNI152 template), and flags: every motion
reason the TAC step logged, and motion large enough to look at even when under the
thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.blocks import BuildContext, kv_block, table_block
from pipeline.report.collect import ScanFiles, StudyResults
from pipeline.tables import read_json, read_table, sidecar_path

__all__ = ["FD_FLAG_MM", "motion_exclusion_block", "preprocess_blocks",
           "preprocessing_methods"]

#: A frame moving more than this (framewise displacement, mm) is flagged for a look at the
#: motion figure even when the configured threshold keeps it: about half a 2 mm voxel per
#: frame is where residual blurring of regions starts to matter.
FD_FLAG_MM = 1.0

_CAPTIONS = {
    "motion": "Estimated head motion per frame: translations (mm), rotations (deg) and "
              "framewise displacement (FD, mm; dashed line: the motion.fd_mm threshold).",
    "registration": "Top: the motion-corrected mean PET over its T1w after coregistration. "
                    "Bottom: the T1w over the MNI152 template after normalization. Edges "
                    "should follow the same anatomy.",
}


def _motion_summary(confounds: Path) -> dict[str, Any]:
    table = read_table(confounds)
    fd = table["framewise_displacement"].to_numpy(float)
    summary = {"frames": len(table), "largest FD (mm)": round(float(np.nanmax(fd)), 2),
               "median FD (mm)": round(float(np.nanmedian(fd)), 2)}
    if "displacement" in table:
        summary["largest displacement from reference (mm)"] = round(
            float(table["displacement"].max()), 2)
    return summary


def preprocess_blocks(scan: ScanFiles, ctx: BuildContext) -> tuple[list[dict], list[str]]:
    """Blocks and flag messages of a preprocessed scan (none for a scan analysed as is).

    Parameters
    ----------
    scan : ScanFiles
        The scan's files (``confounds`` and ``preprocess_qc`` set when it was preprocessed).
    ctx : BuildContext
        The report being built.

    Returns
    -------
    blocks : list of dict
    messages : list of str
        Flags: the motion reasons the TAC step recorded (frames left out), and frames with
        framewise displacement over :data:`FD_FLAG_MM`.
    """
    if scan.confounds is None and not scan.preprocess_qc:
        return [], []
    blocks, messages = [], []
    if scan.confounds is not None:
        summary = _motion_summary(scan.confounds)
        if scan.tacs is not None and not scan.excluded and sidecar_path(scan.tacs).is_file():
            meta = read_json(sidecar_path(scan.tacs))
            excluded = meta.get("FramesExcluded") or []
            summary["frames left out for motion"] = len(excluded)
            messages += [r.split(": ", 1)[-1] for r in meta.get("MotionReasons") or []]
        if summary["largest FD (mm)"] > FD_FLAG_MM:
            messages.append(f"head motion: largest framewise displacement "
                            f"{summary['largest FD (mm)']} mm (over {FD_FLAG_MM} mm); check "
                            "the motion figure")
        blocks.append(kv_block(summary, "Head motion (preprocessing)"))
    for image in sorted(scan.preprocess_qc):
        kind = "motion" if "motion" in image.name else "registration"
        blocks.append(ctx.image_file(image, f"{kind.capitalize()} QC of {scan.stem}",
                                     _CAPTIONS[kind]))
    return blocks, messages


def motion_exclusion_block(results: StudyResults) -> dict[str, Any] | None:
    """The summary's table of scans excluded for head motion (None when there are none).

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read (``ScanFiles.excluded``).
    """
    import pandas as pd

    rows = [{"participant_id": s.participant_id, "scan": s.stem, "reason": "; ".join(s.excluded)}
            for s in results.scans if s.excluded]
    if not rows:
        return None
    return table_block(pd.DataFrame(rows), "Scans excluded for head motion", table_id=
                       "motion-exclusions", caption="Over the motion limits of the config "
                       "(motion.max_displacement_mm, motion.max_outlier_fraction): left out of "
                       "the fits, maps, group tables and voxelwise statistics. Their motion QC "
                       "is in the scan's QC block.")


def _thresholds_text(config: dict[str, Any]) -> tuple[str, str]:
    motion = config.get("motion") if isinstance(config.get("motion"), dict) else {}
    fd = motion.get("fd_mm", 2.0)
    limits = (f"a frame displaced more than {motion.get('max_displacement_mm', 10.0):g} mm "
              f"from the motion reference, or more than "
              f"{100 * float(motion.get('max_outlier_fraction', 0.25)):g} % outlier frames")
    return f"{fd:g}", limits


def preprocessing_methods(results: StudyResults) -> str | None:
    """The methods sentences on preprocessing and motion exclusions (None when no scan was
    preprocessed).

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read (the config's ``motion``
        thresholds and each scan's confounds and exclusion).
    """
    done = [s for s in results.scans if s.confounds is not None]
    if not done:
        return None
    fd, limits = _thresholds_text(results.config)
    text = (f"{len(done)} scan{'s' * (len(done) != 1)} in scanner space were corrected for "
            "head motion (frame-to-frame rigid registration to a reference of the frames with "
            "signal), coregistered rigidly to the subject's T1w (mutual information) and "
            "brought to MNI152 through the T1w's affine and SyN normalization (ANTs); "
            "regional TACs used atlas regions brought into each frame's native space. Frames "
            f"with framewise displacement above {fd} mm were left out of the analyses; a scan "
            f"with {limits} was excluded.")
    excluded = [s for s in done if s.excluded]
    if excluded:
        listed = "; ".join(f"{s.stem} ({', '.join(s.excluded)})" for s in excluded)
        count = "1 scan was" if len(excluded) == 1 else f"{len(excluded)} scans were"
        text += f" {count} excluded for head motion: {listed}."
    else:
        text += " No scan was excluded for head motion."
    return text
