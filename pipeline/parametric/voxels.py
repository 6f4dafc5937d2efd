"""The kinetic models on every voxel: a voxel is a column of the (frames x voxels) matrix.

:func:`fit_voxels` gathers the voxels inside a mask and hands memory-bounded chunks of
columns to the same model function that fits region TACs.

Memory: besides the image and the (n_voxels x n_frames) float32 copy of the masked voxels,
each chunk in flight needs at most about ``40 x n_frames x chunk_voxels x 8`` bytes of
float64 work arrays (linear models need ~15 such arrays; the basis-function SRTM works in
its own smaller sub-chunks), and ``n_jobs`` chunks are in flight. The defaults (32,768
voxels, 28 frames, 2 jobs) stay under 600 MB of work arrays.

Speed: chunks run in ``n_jobs`` threads (numpy releases the GIL), each with
single-threaded BLAS (via threadpoolctl): OpenBLAS's own threads on small products are
10-100x slower on a busy 2-core machine than one thread per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pipeline.blas import one_blas_thread
from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames

__all__ = ["DEFAULT_CHUNK_VOXELS", "FLAG_CODES", "fit_voxels", "flag_codes", "gather_voxels"]

#: Voxels per chunk handed to a model (see the module docstring for the memory bound).
DEFAULT_CHUNK_VOXELS = 32768
#: Bit codes of per-voxel flags in the ``flags`` map; any other flag sets bit 128.
FLAG_CODES: dict[str, int] = {
    "nan_input": 1, "singular": 2, "nonphysical": 4, "nonpositive_tac": 8,
    "at_bound": 16, "not_converged": 32, "grid_edge": 64, "bf_fallback": 256,
    "zero_input": 512, "constant_input": 1024, "large_se": 2048,
}
_OTHER_FLAG = 128


def flag_codes(flags: np.ndarray) -> np.ndarray:
    """Turn ``;``-joined flag strings into integer bit codes (:data:`FLAG_CODES`), 0 = clean.

    Parameters
    ----------
    flags : ndarray of str
        Per-voxel flags as in :attr:`pipeline.kinetics.ModelFit.flags`.
    """
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


def _model(model: str | Callable, frames: Frames, ref_tac: np.ndarray, weights: Any,
           half_life: float | None, options: dict[str, Any]
           ) -> tuple[Callable, dict[str, Any], bool]:
    """The fit function, its keyword arguments and whether the model estimates R1."""
    from pipeline.kinetics.registry import MODELS, model_call

    if callable(model):  # a fit function: a registered one is checked like its name
        spec = next((s for s in MODELS.values() if s.fit is model), None)
        if spec is None:
            return model, {**options, "weights": weights}, True
        model = spec.name
    spec, kwargs, _ = model_call(model, frames, ref_tac, weights=weights, half_life=half_life,
                                 options=options)
    return spec.fit, kwargs, "r1" in spec.estimates


def fit_voxels(frames: Frames, ref_tac: np.ndarray, data: np.ndarray,
               mask: np.ndarray | None = None, model: str | Callable = "mrtm2", *,
               weights: str | np.ndarray | None = "uniform", half_life: float | None = None,
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
    weights : {"uniform", "duration", "counts"} or ndarray, default="uniform"
        Frame weights, a scheme (computed once from ``ref_tac``) or an array.
    half_life : float, default=None
        Minutes, for ``counts`` weights.
    chunk_voxels : int, default=DEFAULT_CHUNK_VOXELS
        Voxels per chunk; bounds the working memory (module docstring).
    n_jobs : int, default=None
        Chunks fitted in parallel threads; None = min(2, CPU count).
    **options
        Passed to the model (``window``, ``t_star``, ``k2prime``...).

    Returns
    -------
    dict of str to ndarray
        Arrays of the image's spatial shape (or (n_voxels,)), NaN outside the mask:
        ``bp_nd``, ``se`` (standard error of BP_ND), ``r1`` (models that estimate R1),
        float32; ``flags``, int32 bit codes (:data:`FLAG_CODES`, 0 = clean or outside
        the mask).

    Raises
    ------
    InputError
        If shapes disagree or the mask selects no voxel (plus the model's own checks).
    ConfigError
        If the model does not take one of ``options``.
    """
    func, kwargs, with_r1 = _model(model, frames, ref_tac, weights, half_life, options)
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
    voxels, index, order = gather_voxels(data, mask)
    if index.size == 0:
        raise InputError(format_problem(None, "the mask selects no voxel",
                                        "Check the brain mask."))
    out = {key: np.full(index.size, np.nan, dtype=np.float32)
           for key in (("bp_nd", "se", "r1") if with_r1 else ("bp_nd", "se"))}
    codes = np.zeros(index.size, dtype=np.int32)
    step = max(int(chunk_voxels), 1)

    def run(lo: int) -> None:
        sl = slice(lo, min(lo + step, index.size))
        block = np.ascontiguousarray(voxels[:, sl], dtype=np.float64)
        result = func(frames, ref_tac, block, **kwargs)
        out["bp_nd"][sl] = result.bp_nd
        out["se"][sl] = result.se["bp_nd"]
        if with_r1:
            out["r1"][sl] = result.r1
        codes[sl] = flag_codes(result.flags)

    starts = range(0, index.size, step)
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    with one_blas_thread():
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
        maps[key] = full.reshape(spatial, order=order)
    flags = np.zeros(mask.size, dtype=np.int32)
    flags[index] = codes
    maps["flags"] = flags.reshape(spatial, order=order)
    return maps


def gather_voxels(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The voxels inside ``mask`` as a (n_frames, n_voxels) float32 matrix.

    Works frame by frame in the array's own memory order (NIfTI images load in Fortran
    order, where a frame is one contiguous volume), so no copy of the 4D image is made.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames) or (n_voxels, n_frames)
    mask : ndarray of bool of the spatial shape

    Returns
    -------
    matrix : ndarray of shape (n_frames, n_voxels), float32
    index : ndarray of int
        Positions of the voxels in the flattened spatial array, in ``order``.
    order : {"C", "F"}
        Memory order of the flattening (use it to put values back).
    """
    n_frames = data.shape[-1]
    order = "F" if data.ndim > 2 and data.flags.f_contiguous and not data.flags.c_contiguous \
        else "C"
    index = np.flatnonzero(mask.ravel(order=order))
    matrix = np.empty((n_frames, index.size), dtype=np.float32)
    if order == "F":  # each frame is a contiguous volume
        for f in range(n_frames):
            matrix[f] = data[..., f].ravel(order="F").take(index)
    else:  # each voxel's frames are contiguous
        matrix[:] = data.reshape(-1, n_frames).take(index, axis=0).T
    return matrix, index, order
