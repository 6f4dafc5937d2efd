"""A participant's within-scan null drift smoothed across regions by a kinetic regression.

The release model's drift of one region (:mod:`pipeline.kinetics.release`, pooled over a
participant's scans with the same windows by :mod:`pipeline.stats.drift_pool`) is noisy, and
its noise is roughly independent from region to region, while the true null drift varies
across regions mostly with their kinetics. This module regresses, per participant and model,
the drift on kinetic predictors across the participant's regions by weighted least squares
(a quadratic in the baseline-window BP_ND, the one kinetic quantity every model
measures well and whose error is not that of the drift; each region weighted by the inverse of its
noise variance, the spread over participants of its residuals) and blends fitted and own
drift region by region (empirical Bayes):

``drift = fitted + w_r (own - fitted)``, ``w_r = tau^2 / (tau^2 + v_r)``,

where ``v_r`` (% points squared) is the sampling variance of region ``r``'s mean residual
over participants and ``tau^2`` the lack of fit of the regression across regions (the
spread of the regions' mean residuals beyond their sampling variance, DerSimonian-Laird).
The blended drift's group mean carries a bias of SD ``(1 - w_r) tau`` that the participants'
spread cannot show: it is returned per row (``drift_lack_sd``) and added to the test's
systematic variance (:mod:`pipeline.stats.contrast_tests`). Units: % of baseline BP_ND.

Measured, and therefore not offered as a ``statistics.null_drift.pool`` value (it is reached
only through :func:`pipeline.stats.regional.contrast_values` with ``drift_pool="regions"``,
for ``benchmarks/bench_drift.py``): on petbp's simulator baseline BP_ND explains little of
the true drift across regions (residual SD 1.7-2.1 points of a 2.0-2.2-point spread),
the lack of fit cannot be told from the release model's noise there (the estimated ``tau``
is too small), and the blend failed the drift interval's coverage (0.72-0.81 in 5 of 6
variations) and the null-study error rate at the defaults; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.design import Design
from pipeline.stats.drift_pool import windows_groups

__all__ = ["BP_DEGREE", "MIN_EXTRA_REGIONS", "blend_drift_across_regions",
           "pool_drift_over_regions"]

#: Degree of the polynomial in baseline BP_ND that the drift is regressed on across regions.
BP_DEGREE = 2

#: Regions a participant needs beyond the regression's parameters for its drift to be smoothed.
MIN_EXTRA_REGIONS = 3

_KEYS = ["participant_id", "region", "model"]


def _wls_residuals(drift: np.ndarray, design: np.ndarray, weights: np.ndarray
                   ) -> np.ndarray:
    """Residuals (% points) of a weighted least-squares fit per participant.

    ``drift`` and ``weights`` are (participants x regions), ``design`` is (participants x
    regions x parameters); NaN drift marks a missing region. Participants with too few
    regions get NaN residuals (their own drift is kept).
    """
    out = np.full_like(drift, np.nan)
    n_par = design.shape[2]
    for p in range(drift.shape[0]):
        ok = np.isfinite(drift[p]) & np.all(np.isfinite(design[p]), axis=1) \
            & np.isfinite(weights[p]) & (weights[p] > 0)
        if ok.sum() < n_par + MIN_EXTRA_REGIONS:
            continue
        root = np.sqrt(weights[p, ok])
        beta, *_ = np.linalg.lstsq(design[p, ok] * root[:, None], drift[p, ok] * root,
                                   rcond=None)
        out[p, ok] = drift[p, ok] - design[p, ok] @ beta
    return out


def _column_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample variance (ddof 1) of each column's finite values (NaN with < 2)."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    filled = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / counts
        var = np.where(finite, (filled - mean) ** 2, 0.0).sum(axis=0) / (counts - 1)
    ok = counts > 1
    return np.where(ok, mean, np.nan), np.where(ok, var, np.nan)


def _lack_of_fit_variance(residual: np.ndarray, sampling_var: np.ndarray,
                          design: np.ndarray) -> float:
    """% points squared: the regions' spread about the regression beyond their sampling
    variance (DerSimonian-Laird moment estimator of a weighted meta-regression, >= 0).

    ``residual`` and ``sampling_var`` are per region (the mean residual over participants
    and its sampling variance), ``design`` the regions' mean design rows.
    """
    w = 1.0 / sampling_var
    q = float(np.sum(w * residual**2))
    xtwx = design.T @ (design * w[:, None])
    xtw2x = design.T @ (design * (w**2)[:, None])
    denominator = float(w.sum() - np.trace(np.linalg.solve(xtwx, xtw2x)))
    dof = residual.size - design.shape[1]
    return max(0.0, (q - dof) / denominator) if denominator > 0 else 0.0


def _blend_one(cell: pd.DataFrame, degree: int) -> pd.DataFrame:
    """Blend fitted and own drift of one model's rows (one row per participant and region)."""
    drift = cell.pivot(index="participant_id", columns="region", values="drift_pct")
    bp = cell.pivot(index="participant_id", columns="region", values="bp_baseline") \
        .reindex_like(drift).to_numpy(float)
    design = np.stack([bp**k for k in range(degree + 1)], axis=2)
    y = drift.to_numpy(float)
    residual = _wls_residuals(y, design, np.ones_like(y))
    noise_var = _column_moments(residual)[1]  # per region, over participants
    weights = np.broadcast_to(1.0 / noise_var, y.shape).copy()
    residual = _wls_residuals(y, design, weights)
    counts, mean_residual, noise_var = (np.isfinite(residual).sum(axis=0),
                                        *_column_moments(residual))
    with np.errstate(invalid="ignore", divide="ignore"):
        sampling_var = noise_var / counts
    usable = (counts >= 2) & np.isfinite(sampling_var) & (sampling_var > 0)
    n_par = design.shape[2]
    if usable.sum() < n_par + MIN_EXTRA_REGIONS:
        return cell.assign(drift_lack_sd=0.0, drift_weight=1.0)
    tau2 = _lack_of_fit_variance(mean_residual[usable], sampling_var[usable],
                                 np.nanmean(design, axis=0)[usable])
    weight = np.where(usable, tau2 / (tau2 + sampling_var), 1.0)
    weight = np.where(np.isfinite(weight), weight, 1.0)
    blended = y - (1.0 - weight)[None, :] * np.where(np.isfinite(residual), residual, 0.0)
    lack = np.where(usable, (1.0 - weight) * np.sqrt(tau2), 0.0)
    frame = pd.DataFrame({"participant_id": np.repeat(drift.index.to_numpy(), y.shape[1]),
                          "region": np.tile(drift.columns.to_numpy(), y.shape[0]),
                          "drift_blend": blended.ravel(),
                          "drift_lack_sd": np.tile(lack, y.shape[0]),
                          "drift_weight": np.tile(weight, y.shape[0])})
    out = cell.merge(frame, on=["participant_id", "region"], how="left")
    out["drift_pct"] = out.pop("drift_blend").fillna(out["drift_pct"])
    return out


def blend_drift_across_regions(drift: pd.DataFrame, degree: int = BP_DEGREE
                               ) -> pd.DataFrame:
    """Smooth each participant's null drift across regions by a kinetic regression.

    Parameters
    ----------
    drift : DataFrame
        One row per participant, region and model of one set of windows:
        ``participant_id``, ``region``, ``model``, ``drift_pct`` (% points, the release
        model's drift, NaN where missing) and ``bp_baseline`` (the baseline window's
        BP_ND, unitless).
    degree : int, default=2
        Degree of the polynomial in ``bp_baseline`` fitted per participant across regions.

    Returns
    -------
    DataFrame
        The same rows with ``drift_pct`` replaced by the blend of fitted and own drift
        (module text), ``drift_weight`` (the own drift's weight ``w_r``, 1 where nothing
        was smoothed) and ``drift_lack_sd`` (% points, ``(1 - w_r) tau``: the SD of the
        blend's bias in the group mean, 0 where nothing was smoothed).

    Examples
    --------
    Drift exactly linear in BP_ND across regions plus participant noise: the blend is
    close to the line.

    >>> rng = np.random.default_rng(0)
    >>> bp = np.tile(np.linspace(0.5, 2.5, 12), 10)
    >>> pid = np.repeat([f"s{i}" for i in range(10)], 12)
    >>> own = -2.0 * bp + rng.normal(0, 3, bp.size)
    >>> table = pd.DataFrame(dict(participant_id=pid, region=np.tile(list("abcdefghijkl"), 10),
    ...                           model="m", drift_pct=own, bp_baseline=bp))
    >>> out = blend_drift_across_regions(table, degree=1)
    >>> bool(np.abs(out["drift_pct"] + 2.0 * bp).mean() < np.abs(own + 2.0 * bp).mean())
    True
    """
    parts = [_blend_one(cell, int(degree)) for _, cell in drift.groupby("model", sort=False)]
    if not parts:
        return drift.assign(drift_lack_sd=0.0, drift_weight=1.0)
    return pd.concat(parts, ignore_index=True)


def pool_drift_over_regions(tables: dict[str, pd.DataFrame], design: Design,
                            degree: int = BP_DEGREE) -> dict[str, pd.DataFrame]:
    """Blend each participant's drift across regions, per set of windows.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Per plain contrast, its per-participant rows after
        :func:`pipeline.stats.drift_pool.pool_drift_over_scans` (``participant_id``,
        ``region``, ``model``, ``bp_baseline``, ``drift_pct`` in % points,
        ``drift_method``).
    design : Design
        Gives each contrast's baseline and condition windows (minutes).
    degree : int, default=2
        Degree of the polynomial in baseline BP_ND (:func:`blend_drift_across_regions`).

    Returns
    -------
    dict of str to DataFrame
        The same tables; in contrasts whose every row has ``drift_method``
        ``release_model``, ``drift_pct`` is the blended drift (the same for the contrasts
        with the same windows; its BP_ND is the participant's mean baseline BP_ND over them),
        with ``drift_weight`` and ``drift_lack_sd``; elsewhere ``drift_lack_sd`` is 0.
    """
    out = {name: table.assign(drift_lack_sd=0.0, drift_weight=np.nan)
           for name, table in tables.items()}
    for names in windows_groups(tables, design).values():
        rows = pd.concat([tables[n][[*_KEYS, "drift_pct", "bp_baseline"]] for n in names])
        shared = rows.groupby(_KEYS, as_index=False)[["drift_pct", "bp_baseline"]].mean()
        blended = blend_drift_across_regions(shared, degree)
        columns = ["drift_pct", "drift_lack_sd", "drift_weight"]
        for n in names:
            out[n] = tables[n].drop(columns=["drift_pct"]).merge(
                blended[[*_KEYS, *columns]], on=_KEYS, how="left")
    return out
