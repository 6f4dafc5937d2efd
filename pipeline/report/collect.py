"""Find and read everything the report shows from an output directory.

The report only reads files the workflow wrote (docs/architecture.md, "File contracts"); a
missing or unreadable file becomes a note in :attr:`StudyResults.problems` and the section
that needed it says so, instead of the whole report failing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import paths
from pipeline.errors import InputError, PetbpError, format_problem
from pipeline.tables import read_json, read_table

__all__ = [
    "SOFTWARE",
    "ScanFiles",
    "StudyResults",
    "collect_results",
    "software_versions",
    "tracer_name",
]

log = logging.getLogger(__name__)

#: Distributions whose versions the report and the methods text state.
SOFTWARE = ("petbp", "numpy", "scipy", "pandas", "nibabel", "nilearn", "matplotlib", "snakemake")

_ENTITY_RE = re.compile(r"(sub|ses|task|trc|rec|run)-([A-Za-z0-9]+)")


@dataclass
class ScanFiles:
    """The per-scan outputs of one PET scan.

    Attributes
    ----------
    stem : str
        BIDS stem, e.g. ``sub-01_task-rejection``.
    entities : dict of str to str
        ``sub``, ``task`` and, when present, ``ses`` and ``run``.
    tacs : Path or None
        ``<stem>_desc-<regionset>_tacs.tsv``.
    bp : dict of str to Path
        Model -> ``<stem>_model-<model>_bp.tsv``.
    fits : dict of str to Path
        Model -> ``<stem>_model-<model>_fits.tsv`` (measured and fitted curves).
    maps : list of Path
        Parametric ``*_bpnd.nii.gz`` maps of this scan.
    region_qc : list of Path
        Region-overlay images (PNG or SVG) of this scan.
    confounds : Path or None
        Head-motion confounds of a preprocessed scan.
    preprocess_qc : list of Path
        Motion and registration QC figures of a preprocessed scan.
    excluded : list of str
        Why the scan was excluded for head motion under the config's ``motion`` thresholds
        (empty: analysed); its older TACs, fits and overlays, if any, are not shown.
    """

    stem: str
    entities: dict[str, str]
    tacs: Path | None = None
    bp: dict[str, Path] = field(default_factory=dict)
    fits: dict[str, Path] = field(default_factory=dict)
    maps: list[Path] = field(default_factory=list)
    region_qc: list[Path] = field(default_factory=list)
    confounds: Path | None = None
    preprocess_qc: list[Path] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    @property
    def participant_id(self) -> str:
        """``sub-<label>``."""
        return f"sub-{self.entities['sub']}"


@dataclass
class StudyResults:
    """Everything read from one output directory (tables are None when absent).

    Attributes
    ----------
    output_dir : Path
    config : dict
        The configuration that ran (validated).
    bp_nd, contrasts, values, correlations, null_drift, exclusions, participants : DataFrame
        ``group/*.tsv`` tables (``values`` is ``contrast_values.tsv``: one row per
        participant, contrast, region and model) and the dataset's ``participants.tsv``;
        None when absent.
    scans : list of ScanFiles
    voxel_maps : list of Path
        Group NIfTI maps under ``group/`` (t maps, FWE maps, correlation maps).
    cluster_tables : list of Path
        Cluster TSVs under ``group/``.
    sidecars : dict of str to dict
        JSON sidecars of the group tables (provenance), by table name.
    problems : list of str
        Files that were missing or unreadable, as messages for the Errors section.
    group_contrasts, group_differences, rating_changes, rating_tests : DataFrame
        Patient-vs-control tables (``contrasts.tsv`` rows of each group; the pooled rows
        stay in ``contrasts``) and rating tables; None when absent.
    group_maps, group_cluster_tables : list of Path
        Voxelwise group maps and their cluster tables under ``group/groups/``.
    """

    output_dir: Path
    config: dict[str, Any]
    bp_nd: pd.DataFrame | None = None
    contrasts: pd.DataFrame | None = None
    values: pd.DataFrame | None = None
    correlations: pd.DataFrame | None = None
    null_drift: pd.DataFrame | None = None
    exclusions: pd.DataFrame | None = None
    participants: pd.DataFrame | None = None
    scans: list[ScanFiles] = field(default_factory=list)
    voxel_maps: list[Path] = field(default_factory=list)
    cluster_tables: list[Path] = field(default_factory=list)
    sidecars: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    group_contrasts: pd.DataFrame | None = None
    group_differences: pd.DataFrame | None = None
    rating_changes: pd.DataFrame | None = None
    rating_tests: pd.DataFrame | None = None
    group_maps: list[Path] = field(default_factory=list)
    group_cluster_tables: list[Path] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        """Models present in ``bp_nd.tsv`` (primary first when the config names one)."""
        found: list[str] = []
        if self.bp_nd is not None and "model" in self.bp_nd:
            found = list(dict.fromkeys(self.bp_nd["model"].astype(str)))
        primary = primary_model(self.config, found)
        return sorted(found, key=lambda m: m != primary)


def primary_model(config: Mapping[str, Any], available: list[str]) -> str | None:
    """The model the config names primary, else the first available one."""
    for key in ("primary_model", "primary"):
        value = config.get(key)
        if isinstance(value, str):
            return value
    stats = config.get("stats")
    if isinstance(stats, Mapping) and isinstance(stats.get("model"), str):
        return stats["model"]
    models = config.get("models")
    if isinstance(models, Mapping):
        for key in ("primary", "primary_model"):
            if isinstance(models.get(key), str):
                return models[key]
    return available[0] if available else None


def software_versions(names: tuple[str, ...] = SOFTWARE) -> dict[str, str]:
    """Installed version of each distribution (``not installed`` when absent).

    Parameters
    ----------
    names : tuple of str, default=SOFTWARE
        Distribution names.
    """
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _read_optional(path: Path, problems: list[str], required: bool = False) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            problems.append(format_problem(path, "file not found",
                                           "Run the workflow step that writes it."))
        return None
    try:
        return read_table(path)
    except PetbpError as err:
        problems.append(str(err))
        return None


def _find_participants(output_dir: Path, config: Mapping[str, Any]) -> Path | None:
    candidates = []
    bids_dir = config.get("bids_dir")
    if isinstance(bids_dir, str) and bids_dir != "demo":
        candidates.append(Path(bids_dir) / "participants.tsv")
    candidates.append(output_dir / "participants.tsv")
    candidates.append(output_dir / paths.DEMO_BIDS / "participants.tsv")
    candidates.extend(sorted(output_dir.glob("*/participants.tsv")))
    candidates.extend(sorted(output_dir.glob("*/*/participants.tsv")))
    return next((p for p in candidates if p.is_file()), None)


def _scan_files(output_dir: Path) -> list[ScanFiles]:
    """Per-scan outputs, recognised by their templates in :mod:`pipeline.paths`."""
    scans: dict[str, ScanFiles] = {}
    for path in sorted(output_dir.glob("sub-*/**/pet/*")):
        parsed = paths.parse_scan_file(path.name)
        if parsed is None or not path.is_file():
            continue
        kind, fields = parsed
        stem = fields["stem"]
        scan = scans.get(stem)
        if scan is None:
            scan = scans[stem] = ScanFiles(stem, dict(_ENTITY_RE.findall(stem)))
        if kind == "tacs":
            scan.tacs = path
        elif kind in ("bp", "fits"):
            getattr(scan, kind)[paths.model_name(fields["model"])] = path
        elif kind == "map":
            scan.maps.append(path)
        elif kind == "region_qc":
            scan.region_qc.append(path)
        elif kind == "confounds":
            scan.confounds = path
        elif kind in ("motion_qc", "registration_qc"):
            scan.preprocess_qc.append(path)
    return list(scans.values())


def collect_results(output_dir: str | Path, config: Mapping[str, Any] | None = None
                    ) -> StudyResults:
    """Read the group tables, per-scan file lists and participants of an output directory.

    Parameters
    ----------
    output_dir : str or Path
        The workflow's ``output_dir``.
    config : mapping, default=None
        The configuration that ran; when None, ``<output_dir>/config.yaml`` or
        ``<output_dir>/logs/config.yaml`` is read if present.

    Returns
    -------
    StudyResults

    Raises
    ------
    InputError
        If ``output_dir`` does not exist.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise InputError(format_problem(output_dir, "output directory not found",
                                        "Run the workflow first, or give the right output_dir."))
    config = dict(config) if config is not None else _load_config(output_dir)
    problems: list[str] = []
    group = output_dir / "group"
    results = StudyResults(output_dir=output_dir, config=config, problems=problems)
    results.bp_nd = _read_optional(group / "bp_nd.tsv", problems, required=True)
    results.contrasts = _read_optional(group / "contrasts.tsv", problems, required=True)
    results.correlations = _read_optional(group / "correlations.tsv", problems, required=True)
    results.values = _read_optional(group / "contrast_values.tsv", problems)
    results.null_drift = _read_optional(group / "null_drift.tsv", problems)
    for name in ("exclusions.tsv", "excluded.tsv", "exclusions_log.tsv"):
        if results.exclusions is None:
            results.exclusions = _read_optional(group / name, problems)
    participants = _find_participants(output_dir, config)
    if participants is not None:
        results.participants = _read_optional(participants, problems)
    _collect_groups(results, group, problems)
    for name in ("bp_nd", "contrasts", "correlations", "group_differences"):
        sidecar = group / f"{name}.json"
        if sidecar.is_file():
            try:
                results.sidecars[name] = read_json(sidecar)
            except PetbpError as err:
                problems.append(str(err))
    results.scans = _scan_files(output_dir)
    _motion_exclusions(results.scans, config, problems)
    if group.is_dir():
        results.voxel_maps = sorted(p for p in group.glob("*.nii.gz"))
        results.cluster_tables = sorted(p for p in group.glob("*cluster*.tsv"))
    return results


def _motion_exclusions(scans: list[ScanFiles], config: Mapping[str, Any],
                       problems: list[str]) -> None:
    """Fill ``excluded`` of every preprocessed scan: the workflow's decision
    (:func:`pipeline.preprocess.confounds.scan_exclusion`) under the config's thresholds."""
    from pipeline.preprocess.confounds import MotionThresholds, scan_exclusion

    preprocessed = [s for s in scans if s.confounds is not None]
    if not preprocessed:
        return
    motion = config.get("motion") if isinstance(config.get("motion"), Mapping) else {}
    defaults = MotionThresholds()
    try:
        thresholds = MotionThresholds(**{k: float(motion.get(k, getattr(defaults, k)))
                                         for k in ("fd_mm", "max_displacement_mm",
                                                   "max_outlier_fraction")})
    except (PetbpError, TypeError, ValueError) as err:
        problems.append(f"motion thresholds of the config: {err}")
        return
    for scan in preprocessed:
        try:
            scan.excluded = scan_exclusion(scan.confounds, thresholds, scan=scan.stem)
        except PetbpError as err:
            problems.append(str(err))


def _collect_groups(results: StudyResults, group: Path, problems: list[str]) -> None:
    """Group-comparison and rating tables; pooled contrast rows stay in ``contrasts``."""
    con = results.contrasts
    if con is not None and "group" in con:
        pooled = con["group"].astype(str) == "all"
        results.group_contrasts = con[~pooled].reset_index(drop=True)
        results.contrasts = con[pooled].drop(columns="group").reset_index(drop=True)
    for name in ("group_differences", "rating_changes", "rating_tests"):
        setattr(results, name, _read_optional(group / f"{name}.tsv", problems))
    folder = group / "groups"
    if folder.is_dir():
        results.group_maps = sorted(folder.glob("*.nii.gz"))
        results.group_cluster_tables = sorted(folder.glob("*_clusters.tsv"))


def _load_config(output_dir: Path) -> dict[str, Any]:
    import yaml

    for path in (output_dir / "config.yaml", output_dir / "logs" / "config.yaml"):
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text())
            except yaml.YAMLError as err:
                log.warning("could not read %s: %s", path, err)
                continue
            if isinstance(loaded, dict):
                return loaded
    return {}


def tracer_name(results: StudyResults) -> str:
    """The tracer as recorded in the config or the TAC/PET sidecars (``not recorded``).

    Parameters
    ----------
    results : StudyResults
        What :func:`collect_results` read.
    """
    for key in ("tracer", "TracerName"):
        if isinstance(results.config.get(key), str):
            return results.config[key]
    candidates: list[Path] = []
    bids_dir = results.config.get("bids_dir")
    if isinstance(bids_dir, str) and Path(bids_dir).is_dir():
        candidates += sorted(Path(bids_dir).glob("sub-*/**/pet/*_pet.json"))[:3]
    candidates += sorted((results.output_dir / paths.DEMO_BIDS).glob("sub-*/**/pet/*_pet.json")
                         )[:3]
    candidates += [s.tacs.with_name(s.tacs.name[:-4] + ".json") for s in results.scans[:3]
                   if s.tacs]
    for path in candidates:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in ("TracerName", "tracer", "Tracer"):
            if isinstance(data.get(key), str):
                return _labelled(data[key], data.get("TracerRadionuclide"))
    return "not recorded"


def _labelled(tracer: str, nuclide) -> str:
    """``carfentanil`` + ``C11`` -> ``[11C]carfentanil``; unchanged if already labelled."""
    match = re.fullmatch(r"([A-Za-z]{1,2})-?(\d+)", nuclide) if isinstance(nuclide, str) else None
    if match is None or tracer.startswith("["):
        return tracer
    return f"[{match[2]}{match[1]}]{tracer}"
