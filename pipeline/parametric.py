"""Parametric maps: the kinetic models of :mod:`pipeline.kinetics` on every voxel.

A voxel is a column: :func:`fit_voxels` gathers the voxels inside a mask into a
(frames x voxels) matrix and hands memory-bounded chunks of columns to the same model
function that fits region TACs. :func:`write_bp_maps` is the step behind ``petbp map`` and
the workflow's parametric rule: it loads the image, builds the reference TAC, fits, and
writes BP_ND (and R1) maps with a JSON sidecar, atomically.

Memory: besides the image and the (n_voxels x n_frames) float32 copy of the masked
voxels, each chunk in flight needs at most about ``40 x n_frames x chunk_voxels x 8``
bytes of float64 work arrays (linear models need ~15 such arrays; the basis-function SRTM
works in its own smaller sub-chunks), and ``n_jobs`` chunks are in flight. The defaults
(32,768 voxels, 28 frames, 2 jobs) stay under 600 MB of work arrays.

Speed: chunks run in ``n_jobs`` threads (numpy releases the GIL), each with
single-threaded BLAS (via threadpoolctl): OpenBLAS's own threads on small products are
10-100x slower on a busy 2-core machine than one thread per chunk.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames

__all__ = [
    "DEFAULT_CHUNK_VOXELS",
    "FLAG_CODES",
    "MODELS_WITH_R1",
    "fit_voxels",
    "flag_codes",
    "reference_tac",
    "write_bp_maps",
]

#: Voxels per chunk handed to a model (see the module docstring for the memory bound).
DEFAULT_CHUNK_VOXELS = 32768
#: Bit codes of per-voxel flags in the ``flags`` map; any other flag sets bit 128.
FLAG_CODES: dict[str, int] = {
    "nan_input": 1, "singular": 2, "nonphysical": 4, "nonpositive_tac": 8,
    "at_bound": 16, "not_converged": 32, "grid_edge": 64, "bf_fallback": 256,
}
_OTHER_FLAG = 128
#: Models that estimate R1 (an R1 map is written for them).
MODELS_WITH_R1 = frozenset({"srtm", "srtm_bf", "srtm2", "mrtm", "mrtm2"})


def flag_codes(flags: np.ndarray) -> np.ndarray:
    """Turn ``;``-joined flag strings into integer bit codes (:data:`FLAG_CODES`), 0 = clean."""
    flags = np.asarray(flags, dtype=object)
    codes = np.zeros(flags.shape, dtype=np.int32)
    flagged = np.flatnonzero(flags != "")
    if flagged.size == 0:
        return codes
    texts, inverse = np.unique(flags[flagged].astype(str), return_inverse=True)
    values = np.zeros(texts.size, dtype=np.int32)
    for i, text in enumerate(texts):
        for name in filter(None, str(text).split(";")):
            values[i] |= FLAG_CODES.get(name, _OTHER_FLAG)
    codes[flagged] = values[inverse]
    return codes


def _model_function(model: str | Callable) -> tuple[str, Callable]:
    if callable(model):
        return getattr(model, "__name__", "custom").removeprefix("fit_"), model
    from pipeline.kinetics import get_model

    return model, get_model(model)


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/nilearn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _check_options(name: str, func: Callable, options: Mapping[str, Any]) -> None:
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [key for key in options if key not in params]
    if unknown:
        accepted = [k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        raise ConfigError(format_problem(
            None, f"model {name!r} does not take option(s) {', '.join(unknown)}",
            f"Leave them out; {name} takes: {', '.join(accepted)}."))


def fit_voxels(frames: Frames, ref_tac: np.ndarray, data: np.ndarray,
               mask: np.ndarray | None = None, model: str | Callable = "mrtm2", *,
               chunk_voxels: int = DEFAULT_CHUNK_VOXELS, n_jobs: int | None = None,
               **options: Any) -> dict[str, np.ndarray]:
    """Fit a reference-tissue model to every voxel inside ``mask``.

    Parameters
    ----------
    frames, ref_tac
        Frame timing (minutes) and reference TAC (Bq/mL, decay-corrected), as for every
        model in :mod:`pipeline.kinetics`.
    data : ndarray of shape (x, y, z, n_frames) or (n_voxels, n_frames)
        Decay-corrected activity, Bq/mL (float32 is fine; chunks are fitted in float64).
    mask : ndarray of bool, shape (x, y, z) or (n_voxels,), default=None
        Voxels to fit; None fits every voxel.
    model : str or callable, default="mrtm2"
        A name from :data:`pipeline.kinetics.MODELS` or a fit function with the common
        signature.
    chunk_voxels : int, default=DEFAULT_CHUNK_VOXELS
        Voxels per chunk; bounds the working memory (module docstring).
    n_jobs : int, default=None
        Chunks fitted in parallel threads; None = min(2, CPU count).
    **options
        Passed to the model (``window``, ``t_star``, ``k2prime``, ``weights`` as an array...).

    Returns
    -------
    dict of str to ndarray
        Arrays of the image's spatial shape (or (n_voxels,)), NaN outside the mask:
        ``bp_nd``, ``se`` (standard error of BP_ND), ``r1`` (models in
        :data:`MODELS_WITH_R1`), float32; ``flags``, int32 bit codes
        (:data:`FLAG_CODES`, 0 = clean or outside the mask).

    Raises
    ------
    InputError
        If shapes disagree or the mask selects no voxel (plus the model's own checks).
    ConfigError
        If the model does not take one of ``options``.
    """
    name, func = _model_function(model)
    _check_options(name, func, options)
    data = np.asarray(data)
    n_frames = frames.n_frames
    if data.ndim not in (2, 4) or data.shape[-1] != n_frames:
        raise InputError(format_problem(
            None, f"image data have shape {data.shape}; expected (x, y, z, {n_frames}) or "
            f"(n_voxels, {n_frames})", "Give one volume per frame, frames last."))
    spatial = data.shape[:-1]
    if mask is None:
        mask = np.ones(spatial, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != spatial:
        raise InputError(format_problem(
            None, f"mask shape {mask.shape} differs from the image's {spatial}",
            "Resample the mask to the PET grid."))
    index = np.flatnonzero(mask.reshape(-1))
    if index.size == 0:
        raise InputError(format_problem(None, "the mask selects no voxel",
                                        "Check the brain mask."))
    voxels = data.reshape(-1, n_frames)
    with_r1 = name in MODELS_WITH_R1
    out = {key: np.full(index.size, np.nan, dtype=np.float32)
           for key in (("bp_nd", "se", "r1") if with_r1 else ("bp_nd", "se"))}
    codes = np.zeros(index.size, dtype=np.int32)
    step = max(int(chunk_voxels), 1)

    def run(lo: int) -> None:
        sl = slice(lo, min(lo + step, index.size))
        block = np.ascontiguousarray(voxels[index[sl]].T, dtype=np.float64)
        result = func(frames, ref_tac, block, **options)
        out["bp_nd"][sl] = result.bp_nd
        out["se"][sl] = result.se.get("bp_nd", np.nan)
        if with_r1:
            out["r1"][sl] = result.r1
        codes[sl] = flag_codes(result.flags)

    starts = range(0, index.size, step)
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    with _single_threaded_blas():
        if jobs <= 1 or len(starts) == 1:
            for lo in starts:
                run(lo)
        else:
            with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
                list(pool.map(run, starts))  # list() re-raises a chunk's exception
    maps: dict[str, np.ndarray] = {}
    for key, values in out.items():
        full = np.full(mask.size, np.nan, dtype=np.float32)
        full[index] = values
        maps[key] = full.reshape(spatial)
    flags = np.zeros(mask.size, dtype=np.int32)
    flags[index] = codes
    maps["flags"] = flags.reshape(spatial)
    return maps


def _load_mask(path: str | os.PathLike, shape: tuple, affine: np.ndarray, what: str):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, f"{what} not found", "Check the path."))
    try:
        img = nib.load(str(path))
        values = np.asarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InputError(format_problem(
            path, f"{what} cannot be read as NIfTI ({type(err).__name__}: {err})",
            "Give a 3D NIfTI mask on the PET grid.")) from err
    values = np.squeeze(values)
    if values.shape != tuple(shape):
        raise InputError(format_problem(
            path, f"{what} has shape {values.shape} but the PET volumes have {tuple(shape)}",
            "Resample the mask to the PET grid (same dimensions and affine)."))
    if not np.allclose(img.affine, affine, atol=1e-3):
        raise InputError(format_problem(
            path, f"{what} is not on the PET grid (its affine differs from the image's)",
            "Resample the mask to the PET image."))
    return np.nan_to_num(values.astype(float)) > 0.5


def reference_tac(data: np.ndarray, ref_mask: np.ndarray,
                  where: str | os.PathLike | None = None) -> np.ndarray:
    """Mean TAC (Bq/mL) of the voxels in ``ref_mask``, with clear errors for unusable masks.

    Raises
    ------
    InputError
        If the mask is empty, or the image is zero/NaN in every reference voxel (the
        region lies outside the field of view).
    """
    n = int(ref_mask.sum())
    if n == 0:
        raise InputError(format_problem(
            where, "the reference mask is empty (no voxel above 0.5)",
            "Give a reference region mask with at least one voxel on the PET grid."))
    values = data[ref_mask]
    finite = np.all(np.isfinite(values), axis=1) & np.any(values != 0, axis=1)
    if not finite.any():
        raise InputError(format_problem(
            where, f"all {n} reference voxels are zero or NaN in the image: the region lies "
            "outside the field of view", "Check the reference mask's space and the image."))
    return values[finite].astype(np.float64).mean(axis=0)


def _default_mask(data: np.ndarray, frames: Frames) -> np.ndarray:
    """Voxels with finite data and mean activity above 5 % of the 98th percentile."""
    mean = np.tensordot(np.nan_to_num(data, nan=0.0), frames.duration, axes=([3], [0]))
    mean /= frames.duration.sum()
    finite = np.all(np.isfinite(data), axis=3)
    level = np.percentile(mean[finite], 98) if finite.any() else 0.0
    return finite & (mean > 0.05 * level)


def _auto_k2prime(frames, ref, data, mask, ref_mask, options) -> float:
    """k2' from MRTM on the mean TAC of the top-decile binding voxels (late ratio)."""
    from pipeline.kinetics.mrtm import k2prime_from_mrtm

    late = frames.mid >= frames.mid[-1] * 2 / 3
    region = mask & ~ref_mask
    if int(region.sum()) < 10:
        raise InputError(format_problem(
            None, f"only {int(region.sum())} brain voxels outside the reference region: too "
            "few to estimate k2'", "Give k2prime (1/min) or a larger brain mask."))
    voxels = data[region]
    ratio = voxels[:, late].mean(axis=1) / max(float(ref[late].mean()), 1e-12)
    high = ratio >= np.nanpercentile(ratio, 90)
    tac = np.nanmean(voxels[high].astype(np.float64), axis=0)
    return k2prime_from_mrtm(frames, ref, tac, t_star=options.get("t_star") or 0.0,
                             window=options.get("window"), weights=options.get("weights"))


def write_bp_maps(pet_path: str | os.PathLike, reference_mask_path: str | os.PathLike | None,
                  out_prefix: str | os.PathLike, *, model: str,
                  mask_path: str | os.PathLike | None = None,
                  window: tuple[float | None, float | None] | None = None,
                  weights: str = "uniform", ref_tac: np.ndarray | None = None,
                  chunk_voxels: int = DEFAULT_CHUNK_VOXELS, **options: Any) -> dict[str, Path]:
    """Fit ``model`` to every brain voxel of a PET image and write the maps.

    Writes ``OUT_PREFIX_bpnd.nii.gz``, ``OUT_PREFIX_r1.nii.gz`` (models with R1),
    ``OUT_PREFIX_flags.nii.gz`` (int bit codes, :data:`FLAG_CODES`) and
    ``OUT_PREFIX_bpnd.json`` (model, options, petbp version, inputs), each atomically.

    Parameters
    ----------
    pet_path : path
        4D PET image with its BIDS sidecar (frame timing, units, decay correction).
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
        Reference TAC (Bq/mL) to use instead of the mask's mean, e.g. the region TAC of
        the workflow's TAC table.
    chunk_voxels : int, default=DEFAULT_CHUNK_VOXELS
    **options
        Model options (``t_star``, ``k2prime``, ``n_basis``...). For ``mrtm2``/``srtm2``
        without ``k2prime``, k2' is estimated by MRTM on the mean TAC of the 10 % of brain
        voxels with the highest late target/reference ratio (recorded in the sidecar).

    Returns
    -------
    dict of str to Path
        ``bpnd``, ``json``, ``flags`` and ``r1`` (when written).
    """
    import nibabel as nib

    from pipeline.bids import load_pet
    from pipeline.kinetics.weights import frame_weights
    from pipeline.tables import atomic_path, provenance, write_json

    image = load_pet(pet_path)
    frames, data, affine = image.frames, image.data, image.affine
    spatial = data.shape[:3]
    ref_mask = np.zeros(spatial, dtype=bool)
    if reference_mask_path is not None:
        ref_mask = _load_mask(reference_mask_path, spatial, affine, "reference mask")
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
    mask = (_load_mask(mask_path, spatial, affine, "brain mask") if mask_path is not None
            else _default_mask(data, frames))
    half_life = image.scan.half_life if image.scan is not None else None
    w = frame_weights(weights, frames, ref, half_life=half_life)
    options = {k: v for k, v in options.items() if v is not None}
    if window is not None:
        options["window"] = tuple(window)
    k2prime_source = "given" if "k2prime" in options else None
    if model in ("mrtm2", "srtm2") and "k2prime" not in options:
        options["k2prime"] = _auto_k2prime(frames, ref, data, mask, ref_mask,
                                           {**options, "weights": w})
        k2prime_source = "MRTM on the mean TAC of the top 10 % binding voxels"
    maps = fit_voxels(frames, ref, data, mask, model, chunk_voxels=chunk_voxels,
                      weights=w, **options)
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, suffix in (("bp_nd", "bpnd"), ("r1", "r1"), ("flags", "flags")):
        if key not in maps:
            continue
        target = prefix.with_name(f"{prefix.name}_{suffix}.nii.gz")
        img = nib.Nifti1Image(maps[key], affine)
        img.header.set_xyzt_units("mm")
        with atomic_path(target) as tmp:
            nib.save(img, str(tmp))
        written[suffix] = target
    in_mask = maps["bp_nd"][mask]
    sidecar = provenance(
        model=model, options={**{k: v for k, v in options.items()}, "weights": weights},
        k2prime_source=k2prime_source,
        inputs={"pet": str(pet_path),
                "reference_mask": None if reference_mask_path is None
                else str(reference_mask_path),
                "reference_tac": "given" if ref_tac is not None else "mask mean",
                "mask": None if mask_path is None else str(mask_path)},
        load_notes=list(image.notes), reference_tac_bq_per_ml=ref,
        n_voxels=int(mask.sum()), n_reference_voxels=int(ref_mask.sum()),
        n_flagged=int(np.count_nonzero(maps["flags"][mask])),
        n_nan=int(np.count_nonzero(~np.isfinite(in_mask))),
        flag_codes=FLAG_CODES, units={"bp_nd": "unitless", "r1": "unitless"},
        chunk_voxels=int(chunk_voxels))
    written["json"] = write_json(prefix.with_name(f"{prefix.name}_bpnd.json"), sidecar)
    return written
