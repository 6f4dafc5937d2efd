"""One-sample sign-flip permutation test with a shared systematic error, FWE by max |t|.

Within-scan effects carry, besides the participants' sampling error, a systematic error
that every participant shares: the release model's residual null drift, with SD
``sys_sd`` (% points), the same for all voxels of a region. Sign flipping alone treats the
effects as symmetric about zero and so cannot know that a whole region may be shifted by
that much. Here each permutation flips the signs of the participants' deviations from the
voxel's mean (scaled by ``sqrt(n / (n - 1))`` so that their mean has the sampling variance
of the observed one) *and* adds to every voxel of a region one draw of that region's
systematic error (independent between regions), so the maximum |t| over voxels of the null
distribution includes region-wide shifts of the size the systematic SD allows (Nichols &
Holmes 2002 for the max-t; the added draw is a parametric bootstrap of the systematic
part). Flipping deviations rather than raw effects keeps a shift of the whole region, which
the null allows, from inflating the flipped data's spread. With ``sys_sd = 0`` the test is
a sign-flip max-t test; nilearn's ``non_parametric_inference`` computes only that case
(flipping raw effects).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sign_flip_test"]


def _t(means: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """One-sample t from the mean and the (sign-invariant) mean square."""
    var = np.maximum(second - means**2, 0.0) * n / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return means / np.sqrt(var / n)


def sign_flip_test(effects: np.ndarray, *, sys_sd: float | np.ndarray = 0.0,
                   groups: np.ndarray | None = None, n_perm: int = 1000, seed: int = 0,
                   chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Voxelwise one-sample t and two-sided FWE-corrected p by random sign flips.

    Parameters
    ----------
    effects : ndarray of shape (n_subjects, n_voxels)
        Per-participant effects, % points (NaN-free).
    sys_sd : float or ndarray of shape (n_voxels,), default=0.0
        Systematic SD of the mean effect, % points, constant within each group of voxels.
    groups : ndarray of int, shape (n_voxels,), default=None
        The region of each voxel: voxels of one group share one systematic draw per
        permutation. None = all voxels one group.
    n_perm : int, default=1000
        Random permutations (the identity is the first).
    seed : int, default=0
    chunk : int, default=64
        Permutations evaluated at once (memory: chunk x n_voxels floats).

    Returns
    -------
    t : ndarray of shape (n_voxels,)
        Observed one-sample t (negative = effect below zero).
    p_fwe : ndarray of shape (n_voxels,)
        Share of permutations whose maximum |t| over voxels reaches the voxel's |t|.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t, p = sign_flip_test(rng.normal(size=(12, 500)), n_perm=200)
    >>> bool(p.min() > 0.05)
    True
    """
    data = np.asarray(effects, float)
    n, n_vox = data.shape
    if n < 3:
        raise ValueError(f"sign_flip_test needs at least 3 participants; got {n}")
    sd = np.broadcast_to(np.asarray(sys_sd, float), (n_vox,))
    labels = np.zeros(n_vox, int) if groups is None else np.unique(
        np.asarray(groups), return_inverse=True)[1].ravel()
    n_groups = int(labels.max()) + 1 if n_vox else 0
    group_sd = np.zeros(n_groups)
    np.maximum.at(group_sd, labels, sd)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(max(int(n_perm), 1), n))
    signs[0] = 1.0
    shifts = rng.standard_normal((signs.shape[0], n_groups)) * group_sd
    shifts[0] = 0.0
    mean = data.mean(axis=0)
    observed = _t(mean, (data**2).mean(axis=0), n)
    deviations = (data - mean) * np.sqrt(n / (n - 1))
    second = (deviations**2).mean(axis=0)  # sign-invariant
    maxima = np.empty(signs.shape[0])
    for start in range(0, signs.shape[0], chunk):
        block = slice(start, start + chunk)
        means = signs[block] @ deviations / n
        shifted = means + shifts[block][:, labels]
        # the shift moves the mean; the spread about the mean stays that of the deviations
        t = _t(shifted, second - means**2 + shifted**2, n)
        maxima[block] = np.nanmax(np.abs(t), axis=1)
    maxima[0] = np.nanmax(np.abs(observed))
    ordered = np.sort(maxima)
    count = ordered.size - np.searchsorted(ordered, np.abs(observed), side="left")
    return observed, count / ordered.size
