"""Which space is a PET image in: MNI152 (analyse as is) or its scanner's (preprocess)?

Evidence, strongest first:

1. the data: the time-averaged image, placed where its header says, against the MNI brain
   (:func:`template_match`): its correlation, the shift and the rotation that would match
   better. An image in MNI space matches best where it is; a scanner-space image is
   typically tens of mm and several degrees away;
2. the file name's BIDS ``space-`` entity (a non-MNI space is never analysed as MNI);
3. NIfTI sform/qform codes, reported but not trusted (ANTs and many scanners write code 1
   for MNI and native images alike; a code 4 contradicted by the data is named).

Thresholds were set on simulated data (:mod:`pipeline.simulate.scanner_study` poses):
see ``benchmarks/README.md``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from pipeline.space import mni_template_file, overlap_fraction

__all__ = [
    "MNI_MAX_ROTATION_DEG",
    "MNI_MAX_SHIFT_MM",
    "MNI_MIN_CORRELATION",
    "SpaceEvidence",
    "detect_space",
    "template_match",
]


#: Smallest correlation with the MNI brain (at zero shift) for an image to be taken as MNI.
MNI_MIN_CORRELATION = 0.9
#: Largest offset (mm) of the best-matching shift for an image to be taken as MNI.
MNI_MAX_SHIFT_MM = 8.0
#: Largest rotation (degrees) of the best-matching rotation for an image to be taken as MNI.
MNI_MAX_ROTATION_DEG = 5.0  # i.e. no tried rotation (10, 20 deg) may match better
_ROTATIONS_DEG = (-20.0, -10.0, 10.0, 20.0)          # tried about each axis
_BRAIN_CENTRE = np.array([0.0, -18.0, 18.0])
_MATCH_STEP_MM = 4.0
_MNI_SPACE_PREFIXES = ("mni", "icbm")


@dataclasses.dataclass(frozen=True)
class SpaceEvidence:
    """Which space an image is in, and why.

    Attributes
    ----------
    space : {"mni", "scanner"}
        ``mni``: analyse as is; ``scanner``: native space, needs preprocessing.
    bids_space : str or None
        The file name's ``space-`` label, if any.
    sform_code, qform_code : int
        NIfTI xform codes (0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI).
    fov_overlap : float
        Fraction of the MNI brain inside the field of view (:func:`overlap_fraction`).
    correlation : float
        Correlation of the time-averaged image with the MNI brain, both smoothed, on a
        4 mm MNI grid, as the header places the image (-1 to 1).
    best_shift_mm : float
        Length of the shift (mm, up to 40) that maximizes that correlation: near 0 for an
        image in MNI space.
    best_rotation_deg : float
        Rotation (degrees, 0, 10 or 20) that maximizes it: 0 for an image in MNI space; NaN
        when not searched (the image already fails the correlation or shift test, so no
        rotation could make it MNI).
    confident : bool
        False for an ``mni`` decision near the thresholds (correlation below 0.95 or best
        shift over 4 mm): ``preprocessing: on`` is then the safe choice if a T1w exists.
    reasons : list of str
    """

    space: str
    bids_space: str | None
    sform_code: int
    qform_code: int
    fov_overlap: float
    correlation: float
    best_shift_mm: float
    best_rotation_deg: float
    confident: bool
    reasons: list[str]

    def describe(self) -> str:
        """One line for ``petbp check``: the space and the evidence."""
        rotation = self.best_rotation_deg
        rotation = "not searched" if rotation is None or not np.isfinite(rotation) else \
            f"{rotation:.0f} deg"
        return (f"{self.space} space (correlation with the MNI brain {self.correlation:.2f}, "
                f"best shift {self.best_shift_mm:.0f} mm, best rotation "
                f"{rotation}, field of view covers "
                f"{100 * self.fov_overlap:.0f}% of it, sform/qform codes {self.sform_code}/"
                f"{self.qform_code}" + (f", space-{self.bids_space}" if self.bids_space
                                        else "") + ")")


@functools.lru_cache(maxsize=1)
def _mni_match_template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI brain as a smoothed 0-1 map on a 4 mm grid (and that grid's affine)."""
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    img = nib.load(str(mni_template_file("t1")))
    data = np.asarray(img.dataobj, np.float32)
    brain = (data > 0.2 * data.max()).astype(np.float32)
    step = int(_MATCH_STEP_MM)
    shape = tuple(n // step for n in brain.shape)
    blocks = brain[:shape[0] * step, :shape[1] * step, :shape[2] * step]
    coarse = blocks.reshape(shape[0], step, shape[1], step, shape[2], step).mean((1, 3, 5))
    pad = 8                                          # 32 mm margin for shifts
    coarse = np.pad(coarse, pad)
    # Coarse voxel i (after padding) is the block of fine voxels around step (i - pad) +
    # (step - 1) / 2.
    to_fine = np.diag([float(step)] * 3 + [1.0])
    to_fine[:3, 3] = (step - 1) / 2.0 - step * pad
    return gaussian_filter(coarse, 1.0), img.affine @ to_fine


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """4x4 rotation about the MNI brain centre."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    m = np.eye(4)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    m[:3, 3] = _BRAIN_CENTRE - m[:3, :3] @ _BRAIN_CENTRE
    return m


def template_match(mean_image: np.ndarray, affine: np.ndarray, *,
                   rotations: bool | None = True) -> tuple[float, float, float]:
    """How well an image, placed by its header, matches the MNI brain.

    Parameters
    ----------
    mean_image : ndarray (3D)
        Time-averaged PET (any units), NaN allowed.
    affine : ndarray of shape (4, 4)
        Voxel -> mm as the header says.
    rotations : bool or None, default=True
        Try the rotations (12 resamplings, most of the cost). None tries them only when the
        header's placement passes the correlation and shift tests of :func:`detect_space`
        (otherwise no rotation can make the image MNI, and ``best_rotation_deg`` is NaN);
        False never.

    Returns
    -------
    correlation : float
        Pearson correlation with the MNI brain on a 4 mm MNI grid, both smoothed (FWHM
        about 10 mm), at the header's placement.
    best_shift_mm : float
        Length of the shift (4 mm steps refined to sub-voxel, up to 40 mm) of highest
        correlation.
    best_rotation_deg : float
        The rotation about the brain centre (tried: +-10 and +-20 degrees about each axis)
        of highest correlation, 0 if none beats the header's placement, NaN if not tried.
    """
    from scipy.ndimage import affine_transform, gaussian_filter

    template, t_affine = _mni_match_template()
    inverse = np.linalg.inv(np.asarray(affine, float))
    voxel = float(np.cbrt(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))))
    image = gaussian_filter(np.nan_to_num(np.asarray(mean_image, np.float32)), 3.0 / voxel)
    a = template - template.mean()
    norm_a = float(np.sqrt((a * a).sum()))

    def placed(moved: np.ndarray) -> np.ndarray:
        # template voxel -> MNI mm -> moved by ``moved`` -> image voxel, one affine: the
        # same trilinear samples as map_coordinates on every voxel's coordinates, faster
        voxel_map = inverse @ moved @ t_affine
        out = affine_transform(image, voxel_map[:3, :3], voxel_map[:3, 3],
                               output_shape=template.shape, order=1, mode="constant",
                               cval=0.0)
        out = gaussian_filter(out, 1.0)
        return out - out.mean()

    b = placed(np.eye(4))
    norm_b = float(np.sqrt((b * b).sum()))
    if norm_a * norm_b <= 0:
        return 0.0, float("inf"), float("inf")
    correlation = float((a * b).sum()) / (norm_a * norm_b)
    shift = _best_shift(a, b)
    if rotations is None:
        rotations = correlation >= MNI_MIN_CORRELATION and shift <= MNI_MAX_SHIFT_MM
    if not rotations:
        return correlation, shift, float("nan")
    best_rotation, best = 0.0, correlation
    for axis in range(3):
        for degrees in _ROTATIONS_DEG:
            r = placed(_rotation(axis, degrees))
            value = float((a * r).sum()) / (norm_a * max(float(np.sqrt((r * r).sum())), 1e-30))
            if value > best:
                best, best_rotation = value, abs(degrees)
    return correlation, shift, best_rotation


def _best_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Length (mm) of the shift of ``b`` (up to 40 mm) that best correlates with ``a`` (both
    zero-mean on the 4 mm match grid), refined to sub-voxel by parabolas."""
    spectrum = np.fft.irfftn(np.fft.rfftn(a) * np.conj(np.fft.rfftn(b)), s=a.shape,
                             axes=(0, 1, 2))
    limit = round(40.0 / _MATCH_STEP_MM)
    offsets = np.indices((2 * limit + 1,) * 3).reshape(3, -1).T - limit
    values = spectrum[tuple((offsets % np.asarray(a.shape)).T)]
    peak = offsets[int(np.argmax(values))].astype(float)
    # Sub-voxel refinement: a parabola through the peak and its two neighbours per axis.
    for axis in range(3):
        around = [spectrum[tuple((peak.astype(int) + step * np.eye(3, dtype=int)[axis])
                                 % np.asarray(a.shape))] for step in (-1, 0, 1)]
        curvature = around[0] - 2.0 * around[1] + around[2]
        if curvature < 0:
            peak[axis] += float(np.clip(0.5 * (around[0] - around[2]) / curvature, -0.5, 0.5))
    return float(np.linalg.norm(peak)) * _MATCH_STEP_MM


def detect_space(mean_image: np.ndarray, affine: np.ndarray, *, shape: Sequence[int],
                 sform_code: int = 0, qform_code: int = 0, bids_space: str | None = None
                 ) -> SpaceEvidence:
    """Decide whether an image is in MNI space or in its scanner's (native) space.

    The data decide: an image is ``mni`` only if, as its header places it, its time-averaged
    activity correlates with the MNI brain at least :data:`MNI_MIN_CORRELATION`, no shift
    larger than :data:`MNI_MAX_SHIFT_MM` and no rotation larger than
    :data:`MNI_MAX_ROTATION_DEG` matches better. A ``space-`` label naming a
    non-MNI space (e.g. ``T1w``) makes it ``scanner`` whatever the match. Header codes are
    reported (a code 4 that the data contradict is named in the reasons) but decide nothing:
    ANTs and many scanners write code 1 for MNI and native images alike.

    Parameters
    ----------
    mean_image : ndarray (3D)
        Time-averaged PET.
    affine : ndarray of shape (4, 4)
    shape : sequence of int
        The image's shape (for the field-of-view overlap).
    sform_code, qform_code : int, default=0
    bids_space : str, default=None
        The ``space-`` entity of the file name (without ``space-``).

    Returns
    -------
    SpaceEvidence
    """
    correlation, shift, rotation = template_match(mean_image, affine, rotations=None)
    overlap = overlap_fraction(shape, affine)
    reasons = []
    data_mni = (correlation >= MNI_MIN_CORRELATION and shift <= MNI_MAX_SHIFT_MM
                and rotation <= MNI_MAX_ROTATION_DEG)
    if data_mni:
        reasons.append(f"the image matches the MNI brain where its header puts it "
                       f"(correlation {correlation:.2f})")
    else:
        reasons.append(f"the image does not match the MNI brain where its header puts it "
                       f"(correlation {correlation:.2f}, need {MNI_MIN_CORRELATION}; it would "
                       f"match better {shift:.0f} mm away"
                       + (f" or rotated {rotation:.0f} deg" if rotation > 0 else "") + ")")
    named_other = bids_space is not None and not bids_space.lower().startswith(
        _MNI_SPACE_PREFIXES)
    if named_other:
        reasons.append(f"its file name says space-{bids_space}, not an MNI space")
    if 4 in (sform_code, qform_code) and not data_mni:
        reasons.append("its header says MNI (xform code 4), but the data do not match")
    space = "mni" if data_mni and not named_other else "scanner"
    confident = space == "scanner" or (correlation >= 0.95 and shift <= 4.0)
    shift = float(shift)
    if not confident:
        reasons.append("the match is close to the thresholds: if this subject has a T1w, "
                       "'preprocessing: on' is the safe choice")
    return SpaceEvidence(space=space, bids_space=bids_space, sform_code=int(sform_code),
                         qform_code=int(qform_code), fov_overlap=overlap,
                         correlation=correlation, best_shift_mm=shift,
                         best_rotation_deg=rotation, confident=confident, reasons=reasons)
