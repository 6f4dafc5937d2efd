"""Per-scan quality control section: fits, residuals, flags and region overlays.

One foldable section per subject (open when something is flagged), one block per scan
inside it, and an overview table of all flags at the top, so that a study of 18 or more
subjects stays easy to walk through.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, PetbpError, format_problem
from pipeline.report import scanplots
from pipeline.report.blocks import BuildContext, details, error_block, table_block, text_block
from pipeline.report.collect import ScanFiles, StudyResults
from pipeline.report.qc import scan_qc
from pipeline.tables import read_json, read_table, sidecar_path

__all__ = ["build_scans", "reference_region"]

log = logging.getLogger(__name__)

Blocks = list[dict[str, Any]]

_NO_CURVES = ("No fitted curves for this scan: {name}_fits.tsv is missing, so only the "
              "measured TACs are shown. The region fit step writes the curves beside the fit "
              "table; rerun fit_regions (or petbp fit) for this scan.")
_QUALITY_NOTE = ("n_frames: frames the model fitted in the window; rmse: root-mean-square "
                 "residual (Bq/mL); nrmse: rmse / mean measured activity of those frames.")


def reference_region(config: Mapping[str, Any], columns: list[str]) -> str | None:
    """The configured reference region if the TAC table has it (else ``occipital`` if present).

    Parameters
    ----------
    config : mapping
        The config that ran.
    columns : list of str
        The TAC table's columns.
    """
    for key in ("reference_region", "reference"):
        value = config.get(key)
        if isinstance(value, str) and value in columns:
            return value
    regions = config.get("regions")
    if isinstance(regions, Mapping) and regions.get("reference") in columns:
        return regions["reference"]
    return "occipital" if "occipital" in columns else None


def _recorded_reference(bp_path) -> str | None:
    """The reference region recorded in a fit table's sidecar, if any."""
    if bp_path is None or not sidecar_path(bp_path).is_file():
        return None
    value = read_json(sidecar_path(bp_path)).get("reference_region")
    return value if isinstance(value, str) else None


def _measured_only(scan: ScanFiles, model: str) -> pd.DataFrame:
    """The scan's measured TACs in the curves layout, fitted NaN (for a missing _fits.tsv).

    The condition windows and the reference come from the fit table's sidecar.

    Raises
    ------
    InputError
        If the scan has no TAC table or fit table to take them from.
    """
    bp_path = scan.bp.get(model)
    if scan.tacs is None or bp_path is None:
        raise InputError(format_problem(
            bp_path or scan.stem, "no fitted curves and no TAC table to show",
            "Run the region fits (and TAC extraction) for this scan."))
    meta = read_json(sidecar_path(bp_path)) if sidecar_path(bp_path).is_file() else {}
    tacs = read_table(scan.tacs)
    reference = meta.get("reference_region")
    regions = [c for c in tacs.columns if c not in ("frame_start", "frame_end", reference)]
    start, end = tacs["frame_start"].to_numpy(float), tacs["frame_end"].to_numpy(float)
    mid = (start + end) / 120.0
    parts = []
    for name, window in (meta.get("conditions") or {"all": None}).items():
        lo, hi = window if window else (None, None)
        used = (mid >= (lo if lo is not None else -np.inf)) & \
            (mid <= (hi if hi is not None else np.inf))
        for region in regions:
            parts.append(pd.DataFrame({
                "condition": name, "region": region, "frame_start": start,
                "frame_end": end, "measured": tacs[region].to_numpy(float),
                "fitted": np.nan, "used": used}))
    return pd.concat(parts, ignore_index=True)


def _pick_model(scan: ScanFiles, models: list[str]) -> str | None:
    available = list(dict.fromkeys([*scan.fits, *scan.bp]))
    return next((m for m in models if m in available), available[0] if available else None)


def _scan_blocks(scan: ScanFiles, results: StudyResults, ctx: BuildContext,
                 spec: Mapping) -> tuple[Blocks, list[str], dict[str, Any]]:
    """Blocks, flag messages and an overview row of one scan."""
    if scan.excluded:  # older fits of the scan, if any, are not shown
        why = "; ".join(scan.excluded)
        row = {"scan": scan.stem, "model": "excluded", "flags": 0,
               "max_nrmse": float("nan"), "outlier_frames": 0}
        message = f"excluded for head motion ({why}): left out of every analysis"
        return _finish_scan(scan, ctx, [text_block(message, "warning")], [message], row)
    model = _pick_model(scan, results.models)
    row: dict[str, Any] = {"scan": scan.stem, "model": model or "n/a", "flags": 0,
                           "max_nrmse": float("nan"), "outlier_frames": 0}
    blocks: Blocks = []
    messages: list[str] = []
    if model is None:
        messages.append("no region fits found for this scan")
        blocks.append(error_block(scan.stem, messages[-1]))
    else:
        fits_path = scan.fits.get(model)
        try:
            if fits_path is not None and fits_path.is_file():
                fits = read_table(fits_path)
            else:  # measured TACs without fits: still worth a look, never refitted here
                blocks.append(text_block(_NO_CURVES.format(name=f"{scan.stem}_model-{model}"),
                                         "note"))
                fits = _measured_only(scan, model)
            bp = read_table(scan.bp[model]) if model in scan.bp else None
            qc = scan_qc(fits, bp, spec.get("thresholds"))
        except Exception as err:  # one scan's QC must not stop the others
            blocks.append(ctx.fail(f"QC of {scan.stem}", err))
            return blocks, [f"QC failed: {err}"], row
        messages.extend(qc.messages)
        row["max_nrmse"] = float(qc.quality["nrmse"].max()) if len(qc.quality) else float("nan")
        row["outlier_frames"] = int(qc.frames["flagged"].sum())
        reference = None
        if scan.tacs is not None:
            try:
                tacs = read_table(scan.tacs)
                ref = _recorded_reference(scan.bp.get(model)) or \
                    reference_region(results.config, list(tacs.columns))
                reference = (ref, tacs) if ref in tacs.columns else None
            except PetbpError as err:
                messages.append(str(err))
        fig_spec = spec.get("figure", {})
        fmt, dpi = fig_spec.get("format", "png"), fig_spec.get("dpi", 72)
        with warnings.catch_warnings():  # no fits: the residual panel is empty
            if not fits["fitted"].notna().any():
                warnings.simplefilter("ignore", UserWarning)
            blocks.append(ctx.figure(
                f"qc/{scan.stem}_model-{model}_overview", scanplots.plot_scan_overview, fits,
                qc.frames, reference=reference, fmt=fmt, dpi=dpi,
                title=f"{scan.stem}: TACs, fits and residuals ({model})",
                caption="Left: measured (points) and fitted (lines) TACs of every region, "
                        "reference dashed, condition windows shaded. Right: robust z of each "
                        "region's residuals per frame; a vertical stripe is a frame that is "
                        "off in every region (motion-like)."))
        if messages and ctx.detailed < spec.get("max_detailed", 10):
            ctx.detailed += 1
            blocks.append(details("Every region with its fit and residuals", [ctx.figure(
                f"qc/{scan.stem}_model-{model}_fits", scanplots.plot_scan_fits, fits,
                reference=reference, ncols=fig_spec.get("ncols", 4), fmt=fmt, dpi=dpi,
                title=f"{scan.stem}: region fits ({model})",
                caption="Points: measured (hollow: outside the window); lines: fit of each "
                        "condition window; small panels: residuals (kBq/mL).")],
                open_=True))
        blocks.append(details("Fit quality per region and window",
                              [table_block(qc.quality, table_id=f"quality-{scan.stem}",
                                           caption=_QUALITY_NOTE)]))
    return _finish_scan(scan, ctx, blocks, messages, row)


def _finish_scan(scan: ScanFiles, ctx: BuildContext, blocks: Blocks, messages: list[str],
                 row: dict[str, Any]) -> tuple[Blocks, list[str], dict[str, Any]]:
    """Add the preprocessing QC, the region overlays and the flag list to a scan's blocks."""
    from pipeline.report.preprocessing import preprocess_blocks

    prep_blocks, prep_messages = preprocess_blocks(scan, ctx)
    blocks += prep_blocks
    messages += prep_messages
    for image in [] if scan.excluded else scan.region_qc:
        blocks.append(ctx.image_file(image, f"Regions of {scan.stem}",
                                     "Region masks over the template and the scan's mean image."))
    row["flags"] = len(messages)
    flag_block = {"kind": "flags", "items": messages} if messages else \
        text_block("No flags.", "ok")
    return [flag_block, *blocks], messages, row


def build_scans(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """One foldable section per subject with its scans' fits, residuals and flags.

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read.
    ctx : BuildContext
        Figure folder and error list of the report being built.
    spec : mapping
        This section's entry of ``spec.yaml``.
    """
    if not results.scans:
        return [error_block("No scans", f"no sub-*/.../pet/ outputs under {results.output_dir}")]
    if ctx.figure_dir is not None:
        (ctx.figure_dir / "qc").mkdir(parents=True, exist_ok=True)
    by_subject: dict[str, list[ScanFiles]] = {}
    for scan in results.scans:
        by_subject.setdefault(scan.participant_id, []).append(scan)
    overview = []
    subject_blocks: Blocks = []
    for subject, scans in sorted(by_subject.items()):
        inner: Blocks = []
        n_flags = 0
        for scan in scans:
            try:
                blocks, messages, row = _scan_blocks(scan, results, ctx, spec)
            except Exception as err:  # one scan must not sink the report
                blocks, messages = [ctx.fail(f"QC of {scan.stem}", err)], ["QC failed"]
                row = {"scan": scan.stem, "flags": 1}
            n_flags += len(messages)
            overview.append({"participant_id": subject, **row})
            inner.append({"kind": "heading", "text": scan.stem, "id": scan.stem})
            inner.extend(blocks)
        badges = [f"{n_flags} flag{'s' * (n_flags != 1)}"] if n_flags else []
        subject_blocks.append(details(f"{subject} ({len(scans)} scans)", inner, badges=badges,
                                      open_=bool(n_flags), anchor=subject))
    table = pd.DataFrame(overview)
    links = {"kind": "links", "title": "Jump to subject",
             "items": [(s, s) for s in sorted(by_subject)]}
    return [links, table_block(table, "Overview (one row per scan)", table_id="scan-overview"),
            *subject_blocks]
