"""One scan's QC overview figure, drawn as soon as the scan's fits exist.

The report's per-scan section shows, for every scan, its TACs with the fitted curves and a
map of residuals (:func:`pipeline.report.scanplots.plot_scan_overview`). Drawn inside the
report, these figures were about half of its time, at the end of the run with one core
idle. The workflow's ``scan_figure`` step (:func:`write_scan_figure`) draws each one as soon
as its scan is fitted, beside the other scans' steps; the report embeds that file when it is
current (:func:`ready_overview`: drawn with the same settings and newer than the tables it
shows) and draws the figure itself otherwise, so ``petbp report`` works on any output folder.

Both paths share :func:`scan_curves`, :func:`scan_reference` and :func:`plot_overview`, so a
figure drawn here is the figure the report would draw.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError, InputError, PetbpError, format_problem
from pipeline.report.collect import ScanFiles
from pipeline.tables import read_json, read_table, sidecar_path

__all__ = [
    "STAMP_KEY",
    "figure_settings",
    "plot_overview",
    "ready_overview",
    "reference_region",
    "scan_curves",
    "scan_reference",
    "write_scan_figure",
]

log = logging.getLogger(__name__)

#: PNG text key holding the settings a ready overview was drawn with (JSON).
STAMP_KEY = "petbp:scan_overview"

_NO_CURVES = ("No fitted curves for this scan: {name}_fits.tsv is missing, so only the "
              "measured TACs are shown. The region fit step writes the curves beside the fit "
              "table; rerun fit_regions (or petbp fit) for this scan.")


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


def figure_settings(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a scan overview depends on, from the report spec's ``scan_qc`` section.

    Parameters
    ----------
    spec : mapping
        The ``scan_qc`` section of a report spec (``thresholds``, ``figure``).

    Returns
    -------
    dict
        ``format`` (png or svg), ``dpi`` and ``frame_z`` (the robust z beyond which a
        frame is marked as motion-like, unitless).
    """
    from pipeline.report.qc import DEFAULT_THRESHOLDS

    figure = spec.get("figure", {})
    thresholds = {**DEFAULT_THRESHOLDS, **(spec.get("thresholds") or {})}
    return {"format": figure.get("format", "png"), "dpi": figure.get("dpi", 72),
            "frame_z": float(thresholds["frame_z"])}


def _measured_only(scan: ScanFiles, model: str) -> pd.DataFrame:
    """The scan's measured TACs in the curves layout, fitted NaN (for a missing _fits.tsv).

    The condition windows and the reference come from the fit table's sidecar.

    Raises
    ------
    InputError
        If the scan has no TAC table or fit table to take them from.
    """
    import numpy as np

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


def scan_curves(scan: ScanFiles, model: str) -> tuple[pd.DataFrame, str | None]:
    """The long fit table of a scan, or its measured TACs alone when the curves are missing.

    Parameters
    ----------
    scan : ScanFiles
        The scan's files.
    model : str
        The model shown.

    Returns
    -------
    fits : DataFrame
        ``<stem>_model-<model>_fits.tsv`` (seconds, Bq/mL); when missing, the measured
        TACs with ``fitted`` NaN (never refitted here).
    note : str or None
        Why the curves are missing, for the report; None when they are there.

    Raises
    ------
    PetbpError
        If the tables cannot be read.
    """
    fits_path = scan.fits.get(model)
    if fits_path is not None and fits_path.is_file():
        return read_table(fits_path), None
    return _measured_only(scan, model), _NO_CURVES.format(name=f"{scan.stem}_model-{model}")


def _recorded_reference(bp_path: Path | None) -> str | None:
    """The reference region recorded in a fit table's sidecar, if any."""
    if bp_path is None or not sidecar_path(bp_path).is_file():
        return None
    value = read_json(sidecar_path(bp_path)).get("reference_region")
    return value if isinstance(value, str) else None


def scan_reference(scan: ScanFiles, model: str, config: Mapping[str, Any]
                   ) -> tuple[tuple[str, pd.DataFrame] | None, list[str]]:
    """The reference region's name and TAC table, as the fits recorded it.

    Parameters
    ----------
    scan : ScanFiles
    model : str
    config : mapping
        The config that ran (its reference region is used when the fit sidecar has none).

    Returns
    -------
    reference : (str, DataFrame) or None
        None when the scan has no TAC table or it lacks the reference.
    messages : list of str
        A TAC table that could not be read, for the scan's flags.
    """
    if scan.tacs is None:
        return None, []
    try:
        tacs = read_table(scan.tacs)
        ref = _recorded_reference(scan.bp.get(model)) or \
            reference_region(config, list(tacs.columns))
    except PetbpError as err:
        return None, [str(err)]
    return ((ref, tacs) if ref in tacs.columns else None), []


def plot_overview(fits: pd.DataFrame, frames: pd.DataFrame,
                  reference: tuple[str, pd.DataFrame] | None):
    """:func:`~pipeline.report.scanplots.plot_scan_overview` of a scan (no title).

    Without any fitted value the residual panel is empty: matplotlib's warning about it
    is silenced.

    Parameters
    ----------
    fits : DataFrame
        Long fit table (seconds, Bq/mL).
    frames : DataFrame
        :func:`pipeline.report.qc.frame_outliers` of the scan.
    reference : (str, DataFrame) or None
        Reference name and TAC table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from pipeline.report import scanplots

    with warnings.catch_warnings():
        if not fits["fitted"].notna().any():
            warnings.simplefilter("ignore", UserWarning)
        return scanplots.plot_scan_overview(fits, frames, reference=reference)


def _stamp(model: str, settings: Mapping[str, Any], reference: str | None) -> str:
    return json.dumps({"model": model, "dpi": settings["dpi"],
                       "frame_z": settings["frame_z"], "reference": reference},
                      sort_keys=True)


def ready_overview(scan: ScanFiles, model: str, settings: Mapping[str, Any],
                   reference: str | None) -> Path | None:
    """The overview PNG the ``scan_figure`` step drew, if the report may embed it.

    It may when it was drawn for this model, reference and settings (its PNG text
    :data:`STAMP_KEY`) and is not older than the fit, region and TAC tables it shows.

    Parameters
    ----------
    scan : ScanFiles
    model : str
    settings : mapping
        :func:`figure_settings` of the report being built.
    reference : str or None
        The reference region the report would draw.

    Returns
    -------
    Path or None
        None: draw the figure.
    """
    path = scan.fit_qc.get(model)
    if path is None or settings["format"] != "png":
        return None
    try:
        from PIL import Image

        with Image.open(path) as image:
            stamp = image.info.get(STAMP_KEY)
        newest_input = max(p.stat().st_mtime for p in
                           (scan.fits.get(model), scan.bp.get(model), scan.tacs)
                           if p is not None)
        if path.stat().st_mtime < newest_input:
            return None
    except (OSError, ValueError) as err:
        log.debug("report: %s not used (%s)", path, err)
        return None
    return path if stamp == _stamp(model, settings, reference) else None


def _scan_section(spec: str | Path | None) -> dict[str, Any]:
    """The ``scan_qc`` section of a report spec (default: the shipped ``spec.yaml``).

    Read here rather than with :func:`pipeline.report.build.load_spec`, which knows every
    section builder (and so this module): the settings are all this step needs.
    """
    from importlib.resources import files

    import yaml

    text = Path(spec).read_text() if spec else \
        files("pipeline.report").joinpath("spec.yaml").read_text()
    try:
        sections = (yaml.safe_load(text) or {}).get("sections") or []
    except (yaml.YAMLError, AttributeError) as err:
        raise ConfigError(format_problem(spec or "pipeline/report/spec.yaml",
                                         f"not a report spec ({err})",
                                         "Give a spec.yaml with a 'sections' list.")) from None
    return next((s for s in sections if isinstance(s, dict) and s.get("kind") == "scan_qc"),
                {})


def write_scan_figure(fits_path: str | Path, bp_path: str | Path, tacs_path: str | Path,
                      out_png: str | Path, *, model: str, reference: str | None = None,
                      spec: str | Path | None = None) -> Path:
    """Draw one scan's QC overview as the report would, for it to embed.

    Parameters
    ----------
    fits_path : str or Path
        ``<stem>_model-<label>_fits.tsv`` (seconds, Bq/mL).
    bp_path : str or Path
        ``<stem>_model-<label>_bp.tsv`` with its sidecar (flags, reference region).
    tacs_path : str or Path
        The scan's TAC table.
    out_png : str or Path
        The PNG to write (``pipeline.paths.FIT_QC``).
    model : str
        The model name of the fits.
    reference : str, default=None
        The reference region when the fit sidecar does not record it.
    spec : str or Path, default=None
        The report layout whose ``scan_qc`` settings apply (default: the shipped spec).

    Returns
    -------
    Path
        ``out_png``.

    Raises
    ------
    PetbpError
        If a table cannot be read; nothing is written then.
    """
    from pipeline.report.figures import render
    from pipeline.report.qc import frame_outliers
    from pipeline.tables import atomic_path

    settings = figure_settings(_scan_section(spec))
    fits_path, bp_path, tacs_path = Path(fits_path), Path(bp_path), Path(tacs_path)
    stem = fits_path.name.split("_model-")[0]
    scan = ScanFiles(stem, {}, tacs=tacs_path, bp={model: bp_path}, fits={model: fits_path})
    fits, _ = scan_curves(scan, model)
    frames = frame_outliers(fits, settings["frame_z"])  # as scan_qc finds them
    config = {"reference_region": reference} if reference else {}
    ref, messages = scan_reference(scan, model, config)
    if messages:
        raise InputError(messages[0])
    stamp = _stamp(model, settings, ref[0] if ref else None)
    data = render(plot_overview(fits, frames, ref), fmt="png", dpi=settings["dpi"],
                  metadata={STAMP_KEY: stamp})
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        tmp.write_bytes(data)
    log.info("scan figure: wrote %s", out_png)
    return out_png
