"""Reference-tissue kinetic models (minutes, 1/min) and the region-fit step.

Models (one module per family: :mod:`~pipeline.kinetics.srtm`, :mod:`~.srtm2`,
:mod:`~.mrtm`, :mod:`~.logan`, :mod:`~.ratio`) all take ``(frames, ref_tac, tacs)`` and
keyword-only options, fit a few region TACs or a chunk of voxels (a voxel is a column) on
one code path, and return a :class:`ModelFit` built by
:func:`~pipeline.kinetics.result.make_fit`, so every model has the same fields, columns and
flags. :data:`MODELS` (:mod:`~pipeline.kinetics.registry`) is the one list of models with
their options, citation, methods sentence and capabilities; :func:`fit` fits one by name.

Steps of the workflow (each also behind a ``petbp`` command):

- :func:`write_region_fits`: every region and condition window of a scan, one model
  (``petbp fit``), with the fitted curves for the report; :func:`write_scan_fits`: every
  configured model of a scan, the release model fitted once (``fit_regions`` rule);
- :func:`write_subject_k2prime`: a subject's shared k2' (in the ``fit_regions`` rule,
  beside each scan); which k2' a fit uses is decided in one place,
  :func:`~pipeline.kinetics.k2prime.resolve_k2prime`;
- :func:`write_bp_nd`: every scan's fits in ``group/bp_nd.tsv`` (``collect_bp_nd`` rule).
"""

from __future__ import annotations

from typing import Any

from pipeline.kinetics.config_checks import models_json_schema, validate_config_models
from pipeline.kinetics.k2prime import (
    estimate_k2prime,
    estimate_k2prime_from_tacs,
    resolve_k2prime,
    write_subject_k2prime,
)
from pipeline.kinetics.registry import (
    MODELS,
    ModelSpec,
    describe_fit,
    fit,
    get_model,
    validate_model_options,
)
from pipeline.kinetics.result import FIT_COLUMNS, SE_KEYS, ModelFit

#: The steps that read and write tables (pandas) load on first use, so importing the
#: models (e.g. for ``petbp map``) stays fast.
_REGION_STEP = ("RegionFits", "curves_path", "fit_conditions", "fit_regions",
                "write_region_fits")
_BP_TABLE = ("BP_COLUMNS", "collect_bp_nd", "write_bp_nd")


def __getattr__(name: str) -> Any:
    if name in _REGION_STEP:
        import pipeline.kinetics.regionfit as regionfit

        return getattr(regionfit, name)
    if name == "write_scan_fits":
        from pipeline.kinetics.scanfits import write_scan_fits

        return write_scan_fits
    if name in _BP_TABLE:
        import pipeline.kinetics.bp_table as bp_table

        return getattr(bp_table, name)
    raise AttributeError(f"module 'pipeline.kinetics' has no attribute {name!r}")


__all__ = [
    "BP_COLUMNS",
    "FIT_COLUMNS",
    "MODELS",
    "SE_KEYS",
    "ModelFit",
    "ModelSpec",
    "RegionFits",
    "collect_bp_nd",
    "curves_path",
    "describe_fit",
    "estimate_k2prime",
    "estimate_k2prime_from_tacs",
    "fit",
    "fit_conditions",
    "fit_regions",
    "get_model",
    "models_json_schema",
    "resolve_k2prime",
    "validate_config_models",
    "validate_model_options",
    "write_bp_nd",
    "write_region_fits",
    "write_scan_fits",
    "write_subject_k2prime",
]
