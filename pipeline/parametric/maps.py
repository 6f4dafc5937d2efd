"""BP_ND (and R1) maps of a 4D PET image: the step behind ``petbp map`` and the workflow's
``parametric_maps`` rules (:func:`write_scan_maps`: a scan's analysis mask and the maps of
every condition window it holds, from one read of the image).

The image is read once; the reference TAC is the reference mask's mean (``petbp map``) or
the region TAC of the scan's TAC table (workflow, as for the region fits); each window is
fitted with :func:`~pipeline.parametric.voxels.fit_voxels` and written as
``<prefix>_bpnd.nii.gz``, ``<prefix>_r1.nii.gz`` (models that estimate R1),
``<prefix>_flags.nii.gz`` (bit codes) and ``<prefix>_bpnd.json``, each atomically. k2' is
chosen by :func:`pipeline.kinetics.k2prime.resolve_k2prime`; when a model needs one and
none is given it is estimated from the mean TAC of the 10 % of brain voxels with the
highest late target/reference ratio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.parametric.masks import default_mask, load_mask, reference_tac
from pipeline.parametric.voxels import (
    DEFAULT_CHUNK_VOXELS,
    FLAG_CODES,
    fit_voxels,
    gather_voxels,
)

__all__ = ["write_bp_maps", "write_condition_map", "write_condition_maps",
           "write_scan_maps"]

Window = Sequence[float | None] | None


@dataclass
class _Inputs:
    image: Any               # PetImage
    ref: np.ndarray          # reference TAC, Bq/mL
    ref_mask: np.ndarray     # reference voxels (may be empty)
    mask: np.ndarray         # voxels to fit
    record: dict[str, Any]   # the inputs, for the sidecar


def _load(pet_path, sidecar, reference_mask_path, mask_path, ref_tac,
          image_cache=None) -> _Inputs:
    from pipeline.bids import load_pet
    from pipeline.bids.image_cache import load_cached_pet
    from pipeline.parametric._pet_input import read_pet_scan

    scan = read_pet_scan(pet_path, sidecar)
    image = load_pet(scan) if image_cache is None else load_cached_pet(scan, image_cache)
    frames, data, affine = image.frames, image.data, image.affine
    spatial = data.shape[:3]
    ref_mask = np.zeros(spatial, dtype=bool)
    if reference_mask_path is not None:
        ref_mask = load_mask(reference_mask_path, spatial, affine, "reference mask")
    if ref_tac is None:
        if reference_mask_path is None:
            raise InputError(format_problem(None, "no reference region given",
                                            "Give a reference mask or a reference TAC."))
        ref = reference_tac(data, ref_mask, reference_mask_path)
    else:
        ref = np.asarray(ref_tac, dtype=np.float64).reshape(-1)
        if ref.size != frames.n_frames:
            raise InputError(format_problem(
                None, f"the reference TAC has {ref.size} values but {pet_path} has "
                f"{frames.n_frames} frames", "Give one reference value per frame."))
    mask = (load_mask(mask_path, spatial, affine, "brain mask") if mask_path is not None
            else default_mask(data, frames.duration))
    record = {"pet": str(pet_path), "sidecar": str(image.scan.sidecar_path),
              "reference_mask": None if reference_mask_path is None
              else str(reference_mask_path),
              "reference_tac": "given" if ref_tac is not None else "mask mean",
              "mask": None if mask_path is None else str(mask_path)}
    return _Inputs(image, ref, ref_mask, mask, record)


def _high_binding_tac(inputs: _Inputs) -> np.ndarray:
    """Mean TAC (Bq/mL) of the top 10 % of brain voxels by late target/reference ratio."""
    frames, data, ref = inputs.image.frames, inputs.image.data, inputs.ref
    late = frames.mid >= frames.mid[-1] * 2 / 3
    region = inputs.mask & ~inputs.ref_mask
    if int(region.sum()) < 10:
        raise InputError(format_problem(
            None, f"only {int(region.sum())} brain voxels outside the reference region: too "
            "few to estimate k2'", "Give k2prime (1/min) or a larger brain mask."))
    voxels, _, _ = gather_voxels(data, region)  # (n_frames, n_voxels)
    ratio = voxels[late].mean(axis=0) / max(float(ref[late].mean()), 1e-12)
    high = ratio >= np.nanpercentile(ratio, 90)
    return np.nanmean(voxels[:, high].astype(np.float64), axis=1)


def _fit_and_write(inputs: _Inputs, out_prefix: str | os.PathLike, *, model: str,
                   window: Window, weights: str, options: Mapping[str, Any],
                   shared: float | None, chunk_voxels: int,
                   extra_inputs: Mapping[str, Any] | None = None) -> dict[str, Path]:
    import nibabel as nib

    from pipeline.kinetics import describe_fit, resolve_k2prime
    from pipeline.kinetics.k2prime import FIRST_PASS, estimate_k2prime_from_tacs
    from pipeline.kinetics.weights import frame_weights
    from pipeline.tables import atomic_path, provenance, write_json

    image = inputs.image
    frames = image.frames
    half_life = image.scan.half_life if image.scan is not None else None
    window = None if window is None else tuple(window)
    options = {k: v for k, v in options.items() if v is not None}

    def estimate(method: str) -> tuple[float, str]:
        w = frame_weights(weights, frames, inputs.ref, half_life=half_life)
        value, used = estimate_k2prime_from_tacs(
            frames, inputs.ref, _high_binding_tac(inputs), method=method, window=window,
            t_star=options.get("t_star"), weights=w)
        return value, f"{FIRST_PASS[used]} on the mean TAC of the top 10 % binding voxels"

    options, source = resolve_k2prime(model, options, shared=shared, estimate=estimate)
    if window is not None:
        options["window"] = window
    maps = fit_voxels(frames, inputs.ref, image.data, inputs.mask, model, weights=weights,
                      half_life=half_life, chunk_voxels=chunk_voxels, **options)
    prefix = Path(out_prefix)
    written: dict[str, Path] = {}
    for key, suffix in (("bp_nd", "bpnd"), ("r1", "r1"), ("flags", "flags")):
        if key not in maps:
            continue
        target = prefix.with_name(f"{prefix.name}_{suffix}.nii.gz")
        img = nib.Nifti1Image(maps[key], image.affine)
        img.header.set_xyzt_units("mm")
        with atomic_path(target) as tmp:
            nib.save(img, str(tmp))
        written[suffix] = target
    in_mask = maps["bp_nd"][inputs.mask]
    recorded = {**options, "weights": weights}
    sidecar = provenance(
        model=model, options=recorded, k2prime_source=source,
        methods=describe_fit(model, {**recorded, "k2prime_source": source}),
        inputs={**inputs.record, **dict(extra_inputs or {})},
        load_notes=list(image.notes), reference_tac_bq_per_ml=inputs.ref,
        n_voxels=int(inputs.mask.sum()), n_reference_voxels=int(inputs.ref_mask.sum()),
        n_flagged=int(np.count_nonzero(maps["flags"][inputs.mask])),
        n_nan=int(np.count_nonzero(~np.isfinite(in_mask))),
        flag_codes=FLAG_CODES, units={"bp_nd": "unitless", "r1": "unitless"},
        chunk_voxels=int(chunk_voxels))
    written["json"] = write_json(prefix.with_name(f"{prefix.name}_bpnd.json"), sidecar)
    return written


def write_bp_maps(pet_path: str | os.PathLike, reference_mask_path: str | os.PathLike | None,
                  out_prefix: str | os.PathLike, *, model: str,
                  mask_path: str | os.PathLike | None = None, window: Window = None,
                  weights: str = "uniform", ref_tac: np.ndarray | None = None,
                  sidecar: str | os.PathLike | None = None,
                  chunk_voxels: int = DEFAULT_CHUNK_VOXELS, **options: Any) -> dict[str, Path]:
    """Fit ``model`` to every brain voxel of a PET image and write the maps.

    Parameters
    ----------
    pet_path : path
        4D PET image (``.nii.gz`` or ``.nii``): a BIDS ``*_pet.nii.gz`` (sidecars inherited
        as in BIDS) or any name with a JSON sidecar of the same stem.
    reference_mask_path : path or None
        Reference-region mask on the PET grid; may be None when ``ref_tac`` is given.
    out_prefix : path
        Output prefix (folders are created).
    model : str
        One of :data:`pipeline.kinetics.MODELS`.
    mask_path : path, default=None
        Brain mask on the PET grid; None keeps voxels with finite data and mean activity
        above 5 % of the 98th percentile.
    window : (start, end) minutes, default=None
        Fit window (e.g. a condition's frames of a bolus+infusion scan).
    weights : {"uniform", "duration", "counts"}, default="uniform"
        Frame weighting scheme (counts use the reference TAC and the tracer half-life).
    ref_tac : ndarray of shape (n_frames,), default=None
        Reference TAC (Bq/mL) to use instead of the mask's mean.
    sidecar : path, default=None
        The image's JSON sidecar, when it does not have the image's stem.
    chunk_voxels : int, default=DEFAULT_CHUNK_VOXELS
    **options
        Model options (``t_star``, ``k2prime``, ``n_basis``...); see the module docstring
        for k2'.

    Returns
    -------
    dict of str to Path
        ``bpnd``, ``json``, ``flags`` and ``r1`` (when written).
    """
    inputs = _load(pet_path, sidecar, reference_mask_path, mask_path, ref_tac)
    return _fit_and_write(inputs, out_prefix, model=model, window=window, weights=weights,
                          options=options, shared=None, chunk_voxels=chunk_voxels)


def write_condition_maps(pet_path: str | os.PathLike, tacs_path: str | os.PathLike,
                         mask_path: str | os.PathLike, out_prefixes: Mapping[str, Any], *,
                         windows: Mapping[str, Window], reference: str, model: str,
                         options: Mapping[str, Any] | None = None,
                         k2prime_path: str | os.PathLike | None = None,
                         chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
                         image_cache: str | os.PathLike | None = None,
                         k2prime_tacs: Sequence[str | os.PathLike] | None = None,
                         k2prime_settings: Any = None) -> dict[str, Path]:
    """BP_ND maps of every condition window of a scan, from one read of the image.

    Parameters
    ----------
    pet_path : path
        The scan's 4D image.
    tacs_path : path
        The scan's TAC table; its ``reference`` column is the reference TAC (as for the
        region fits).
    mask_path : path
        Analysis mask (:func:`pipeline.parametric.masks.write_analysis_mask`).
    out_prefixes : mapping of str to path
        Condition -> output prefix (``<prefix>_bpnd.nii.gz`` and friends).
    windows : mapping of str to (start, end) or None
        Condition -> window, minutes.
    reference : str
        Reference region.
    model : str
        A model fit for maps (:data:`pipeline.kinetics.MODELS`).
    options : mapping, default=None
        Model options as under ``voxelwise.options`` (``weights`` a scheme name,
        ``k2prime`` a number, ``"shared"`` or absent).
    k2prime_path : path, default=None
        The subject's shared k2' (JSON), for ``k2prime: shared``.
    chunk_voxels : int, default=DEFAULT_CHUNK_VOXELS
        Voxels fitted at once (bounds memory).
    image_cache : str or path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`), where the workflow's
        TAC step left the scan: memory-mapped instead of read again.
    k2prime_tacs : sequence of path-like, default=None
        Instead of ``k2prime_path``: the TAC tables of all the subject's scans, from which
        the shared k2' (1/min) is estimated here with ``k2prime_settings``
        (:func:`pipeline.design.k2prime_settings`), exactly as
        :func:`pipeline.kinetics.write_subject_k2prime` does (the workflow's map jobs, so
        that they do not wait for, nor rerun after, the scan's region fits).
    k2prime_settings : K2primeSettings, default=None
        First-pass model, regions and window, with ``k2prime_tacs``.

    Returns
    -------
    dict of str to Path
        Condition -> its ``_bpnd.nii.gz``.
    """
    from pipeline.kinetics.k2prime import read_shared_k2prime
    from pipeline.tables import read_tacs

    missing = [c for c in out_prefixes if c not in windows]
    if missing:
        raise InputError(format_problem(None, f"no window for condition(s) {missing}",
                                        "Give a window for every output."))
    options = dict(options or {})
    weights = options.pop("weights", "uniform") or "uniform"
    if k2prime_tacs:
        from pipeline.kinetics.k2prime import estimate_k2prime

        shared, _ = estimate_k2prime([read_tacs(p) for p in k2prime_tacs], k2prime_settings,
                                     reference=reference)
    else:
        shared = read_shared_k2prime(k2prime_path)
    inputs = _load(pet_path, None, None, mask_path, read_tacs(tacs_path).column(reference),
                   image_cache)
    extra = {"tacs": str(tacs_path), "reference_region": reference,
             "k2prime_file": None if k2prime_path is None else str(k2prime_path)}
    if k2prime_tacs:
        extra["k2prime_tacs"] = [str(p) for p in k2prime_tacs]
    return {cond: _fit_and_write(inputs, prefix, model=model, window=windows[cond],
                                 weights=weights, options=options, shared=shared,
                                 chunk_voxels=chunk_voxels, extra_inputs=extra)["bpnd"]
            for cond, prefix in out_prefixes.items()}


def write_condition_map(pet_path: str | os.PathLike, tacs_path: str | os.PathLike,
                        mask_path: str | os.PathLike, out_prefix: str | os.PathLike, *,
                        window: Window, reference: str, model: str,
                        options: Mapping[str, Any] | None = None,
                        k2prime_path: str | os.PathLike | None = None,
                        image_cache: str | os.PathLike | None = None) -> Path:
    """BP_ND map of one condition window (:func:`write_condition_maps` with one window).

    Parameters
    ----------
    pet_path : path-like or Scan
        The scan's 4D image (a :class:`pipeline.bids.Scan` carries its sidecar's facts).
    tacs_path : path-like
        The scan's TAC table (its ``reference`` column is the reference TAC).
    mask_path : path-like
        The analysis mask.
    out_prefix : path-like
        Output prefix (``<prefix>_bpnd.nii.gz``, ``<prefix>_flags.nii.gz``, JSON sidecar).
    window : (float, float) or None
        The condition's window, minutes after injection; None uses the whole scan.
    reference : str
        Reference region (column of the TAC table).
    model : str
        A model fit for maps (:data:`pipeline.kinetics.MODELS`).
    options : mapping, default=None
        Model options as under ``voxelwise.options``.
    k2prime_path : path-like, default=None
        The subject's shared k2' (JSON), for ``k2prime: shared``.
    image_cache : path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`).
    """
    return write_condition_maps(pet_path, tacs_path, mask_path, {"window": out_prefix},
                                windows={"window": window}, reference=reference, model=model,
                                options=options, k2prime_path=k2prime_path,
                                image_cache=image_cache)["window"]


def write_scan_maps(pet_path: str | os.PathLike, tacs_path: str | os.PathLike,
                    mask_path: str | os.PathLike, out_prefixes: Mapping[str, Any], *,
                    windows: Mapping[str, Window], reference: str, model: str,
                    region_config: str | os.PathLike | None = None,
                    mask_mode: str = "regions",
                    options: Mapping[str, Any] | None = None,
                    k2prime_path: str | os.PathLike | None = None,
                    image_cache: str | os.PathLike | None = None,
                    k2prime_tacs: Sequence[str | os.PathLike] | None = None,
                    k2prime_settings: Any = None) -> dict[str, Path]:
    """A scan's analysis mask, then the BP_ND map of each of its condition windows.

    The workflow's ``parametric_maps`` step: one job per scan (the mask needs only the
    image's header; the image is read once for every window).

    Parameters
    ----------
    pet_path : path-like or Scan
        The scan's 4D image (a :class:`pipeline.bids.Scan` carries its sidecar's facts).
    tacs_path : path-like
        The scan's TAC table (its ``reference`` column is the reference TAC).
    mask_path : path-like
        The analysis mask to write (:func:`pipeline.parametric.masks.write_analysis_mask`).
    out_prefixes : mapping of str to path
        Condition -> output prefix (``<prefix>_bpnd.nii.gz`` and friends).
    windows : mapping of str to (start, end) or None
        Condition -> window, minutes after injection; None = the whole scan.
    reference : str
        Reference region (column of the TAC table).
    model : str
        A model fit for maps (:data:`pipeline.kinetics.MODELS`).
    region_config : path-like, default=None
        The region config (None: the shipped one), for the mask.
    mask_mode : {"regions", "brain"}, default="regions"
        ``voxelwise.mask``.
    options : mapping, default=None
        Model options as under ``voxelwise.options``.
    k2prime_path : path-like, default=None
        The subject's shared k2' (JSON), for ``k2prime: shared``.
    image_cache : path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`).
    k2prime_tacs, k2prime_settings
        As :func:`write_condition_maps` (the shared k2' estimated from the subject's TACs).

    Returns
    -------
    dict of str to Path
        Condition -> its ``_bpnd.nii.gz``.
    """
    from pipeline.parametric.masks import write_analysis_mask

    write_analysis_mask(os.fspath(pet_path), mask_path, region_config=region_config,
                        mode=mask_mode)
    return write_condition_maps(pet_path, tacs_path, mask_path, out_prefixes, windows=windows,
                                reference=reference, model=model, options=options,
                                k2prime_path=k2prime_path, image_cache=image_cache,
                                k2prime_tacs=k2prime_tacs, k2prime_settings=k2prime_settings)
