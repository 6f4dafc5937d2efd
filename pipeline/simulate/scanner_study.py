"""Simulate a study in PET scanner space: head pose, size, repositioning, motion and a T1w.

``simulate_scanner_study(out_dir, ...)`` draws the same subjects, kinetics and voxel
variability as :func:`pipeline.simulate.simulate_study` with the same seed and MNI voxel
size (it shares :func:`pipeline.simulate.study.prepare_study`), so the two datasets are the
same study seen in two spaces. Each scan's noiseless MNI-space frames (the phantom, PSF and
voxel variability of :mod:`pipeline.simulate.images`) are pulled into the PET scanner's
grid through the subject's anatomy, the scan's head pose and the frame's head motion
(:mod:`pipeline.simulate.headpose`); count-following noise (:mod:`pipeline.simulate.noise`)
is then added on the scanner grid, where a real scanner makes it.

``shared_noise=True`` makes a noise-matched twin of the MNI study instead, for benchmarks
that compare the two analyses: each scan's *noisy* MNI frames are drawn exactly as
:func:`simulate_study` draws them (same model, same noise stream consumed in the same
order, so bit-identical to the MNI study's images of the same seed and voxel size) and then
pulled into the scanner grid through the same anatomy, pose and per-frame motion, with no
further noise. Shared: the noise realization, attached to the head as it moves. Still
different: the cubic resampling onto the scanner grid (it interpolates the noise between
MNI voxels, which smooths it slightly: the noise SD dropped by 0.2-0.3 % on 2 mm grids),
and voxels that sample a scaled and rotated head (the noise has FWHM ``noise_fwhm`` in MNI
mm, so about ``s noise_fwhm`` in scanner mm for a head scaled by ``s``); the analyses'
region masks on the two grids then average the same noise over slightly different points.
A real scanner's noise does not move with the head; the default (independent noise drawn on
the scanner grid) is the faithful model, the twin only removes the noise difference
between the two analyses of one study.

Writes ``out_dir/bids`` (``sub-XX/pet/..._pet.nii.gz`` + JSON with NIfTI xform code 1,
scanner; ``sub-XX/anat/sub-XX_T1w.nii.gz``) and ``out_dir/truth`` (the truth tables of
:func:`simulate_study`, plus ``transforms/``: the native -> MNI mapping of every subject and
the pose and per-frame motion of every scan; see :func:`read_scanner_truth`).

The scanner resolution is the phantom's PSF on MNI-sized anatomy; a head scaled by ``s``
sees it scaled by ``s`` too (a few percent).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.ndimage import map_coordinates

from pipeline.blas import one_blas_thread
from pipeline.frames import Frames
from pipeline.preprocess.rigid import framewise_displacement, params_from_matrix
from pipeline.simulate.anatomy import T1Settings, native_t1_grid, synthetic_t1
from pipeline.simulate.bids_writer import (
    pet_sidecar,
    write_dataset_description,
    write_nifti,
    write_participants,
)
from pipeline.simulate.carfentanil import StudySettings
from pipeline.simulate.headpose import (
    HeadGeometry,
    MotionSettings,
    PoseSettings,
    draw_head_geometry,
    draw_motion,
    draw_pose,
)
from pipeline.simulate.images import ImageSettings, noise_norm, scan_image, subject_maps
from pipeline.simulate.noise import NoiseModel, frame_variance_scale
from pipeline.simulate.phantom import blur, phantom_mixing
from pipeline.simulate.study import TASK_TEXT, prepare_study, write_truth
from pipeline.tables import read_json, read_table, write_json, write_table

__all__ = [
    "ScannerSettings",
    "ScannerTruth",
    "add_frame_noise",
    "pet_grid",
    "read_scanner_truth",
    "simulate_scanner_study",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannerSettings:
    """Geometry of a scanner-space study.

    Attributes
    ----------
    pet_voxel_mm : float, default=2.0
        Isotropic PET voxel size, mm.
    pet_shape : tuple of int, default=(128, 128, 96)
        PET matrix; the field-of-view centre is the scanner origin.
    t1 : T1Settings
    pose : PoseSettings
    motion : MotionSettings
    """

    pet_voxel_mm: float = 2.0
    pet_shape: tuple[int, int, int] = (128, 128, 96)
    t1: T1Settings = field(default_factory=T1Settings)
    pose: PoseSettings = field(default_factory=PoseSettings)
    motion: MotionSettings = field(default_factory=MotionSettings)


@dataclass(frozen=True)
class ScannerTruth:
    """True geometry of one scan, from the truth folder.

    Attributes
    ----------
    head : HeadGeometry
        The subject's native -> MNI mapping.
    t1_affine : ndarray of shape (4, 4)
        T1w voxel -> native mm.
    scanner_from_native : ndarray of shape (4, 4)
        Head pose at scan start.
    motion : ndarray of shape (n_frames, 4, 4)
        Scanner point at scan start -> scanner point in frame k.
    table : DataFrame
        The motion table (frame times in s, parameters in mm and radians, FD in mm).
    """

    head: HeadGeometry
    t1_affine: np.ndarray
    scanner_from_native: np.ndarray
    motion: np.ndarray
    table: pd.DataFrame

    def mni_from_frame(self, k: int, points: np.ndarray) -> np.ndarray:
        """MNI coordinates (n, 3) of scanner points (n, 3) of frame ``k``, mm."""
        native_from_scanner = np.linalg.inv(self.motion[k] @ self.scanner_from_native)
        native = points @ native_from_scanner[:3, :3].T + native_from_scanner[:3, 3]
        return self.head.mni_from_native(native)


def pet_grid(settings: ScannerSettings) -> np.ndarray:
    """PET voxel -> scanner mm affine (RAS axes, field-of-view centre at the origin).

    Parameters
    ----------
    settings : ScannerSettings
        The scanner's matrix and voxel size (mm).
    """
    affine = np.diag([settings.pet_voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -(np.asarray(settings.pet_shape) - 1) * settings.pet_voxel_mm / 2.0
    return affine


def _to_scanner(mni_frames: np.ndarray, mni_affine: np.ndarray, head: HeadGeometry,
                scanner_from_native: np.ndarray, motion: np.ndarray, shape: tuple,
                affine: np.ndarray) -> np.ndarray:
    """Sample MNI frames (noiseless, or the twin's noisy ones) at each scanner voxel through
    pose and motion."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    scanner = ijk @ affine[:3, :3].T + affine[:3, 3]
    to_voxel = np.linalg.inv(mni_affine)
    out = np.zeros((*shape, mni_frames.shape[-1]), np.float32)
    for k in range(mni_frames.shape[-1]):
        native_from_scanner = np.linalg.inv(motion[k] @ scanner_from_native)
        native = scanner @ native_from_scanner[:3, :3].T + native_from_scanner[:3, 3]
        mni = head.mni_from_native(native)
        coords = (mni @ to_voxel[:3, :3].T + to_voxel[:3, 3]).T
        # Cubic: the frames are already PSF-smooth, and trilinear sampling would blur them
        # a second time (lowering regional contrast by a few percent at 2 mm).
        out[..., k] = map_coordinates(mni_frames[..., k], coords, order=3, mode="constant",
                                      cval=0.0).reshape(shape)
    return out


def add_frame_noise(image: np.ndarray, frames: Frames, model: NoiseModel,
                    rng: np.random.Generator, voxel_size: float) -> np.ndarray:
    """Add count-following, spatially correlated noise to noiseless frames (in place).

    The noise of :func:`pipeline.simulate.images.scan_image` (variance ``k C DCF / dt``,
    white noise smoothed to FWHM ``model.noise_fwhm`` and rescaled to unit variance), on
    any grid of isotropic ``voxel_size`` mm.

    Parameters
    ----------
    image : ndarray of shape (x, y, z, n_frames)
        Noiseless decay-corrected activity, Bq/mL.
    frames : Frames
    model : NoiseModel
        ``level = 0`` leaves the image as it is.
    rng : numpy.random.Generator
    voxel_size : float
        mm.

    Returns
    -------
    ndarray
        ``image``, with noise.
    """
    if model.level <= 0:
        return image
    scale = frame_variance_scale(frames, model).astype(np.float32)
    norm = np.float32(noise_norm(model.noise_fwhm, voxel_size))
    for k in range(frames.n_frames):
        white = rng.standard_normal(image.shape[:3], dtype=np.float32)
        if model.noise_fwhm > 0:
            white = blur(white, model.noise_fwhm, voxel_size) / norm
        image[..., k] += np.sqrt(scale[k] * np.clip(image[..., k], 0.0, None)) * white
    return image


def simulate_scanner_study(out_dir: str | PathLike, *, subjects: int = 2,
                           design: str = "windows", seed: int = 2013, null: bool = False,
                           noise: float = 1.0, mni_voxel_size: float = 2.0,
                           scanner: ScannerSettings | None = None,
                           settings: StudySettings | None = None,
                           image_settings: ImageSettings | None = None,
                           noise_model: NoiseModel | None = None,
                           regions_config: str | PathLike | None = None,
                           shared_noise: bool = False) -> Path:
    """Simulate a study in PET scanner space with T1w images and the true transforms.

    Parameters
    ----------
    out_dir : path-like
        Output folder: ``bids/`` and ``truth/`` are written in it.
    subjects, design, seed, null, noise, settings, image_settings, noise_model, \
regions_config
        As in :func:`pipeline.simulate.simulate_study` (same seed and ``mni_voxel_size`` as
        ``voxel_size`` there: same subjects, kinetics and voxel variability).
    mni_voxel_size : float, default=2.0
        Voxel size of the MNI phantom the activity is drawn on, mm.
    scanner : ScannerSettings, default=None
        PET and T1w grids, head pose and motion.
    shared_noise : bool, default=False
        False: noise drawn on the scanner grid after resampling (where a scanner makes it).
        True: the MNI study's noise realization (same seed and ``mni_voxel_size``) carried
        into scanner space with the activity (see the module docstring): a noise-matched
        twin of :func:`simulate_study` for accuracy benchmarks.

    Returns
    -------
    Path
        The BIDS dataset folder ``out_dir/bids``.
    """
    scanner = scanner or ScannerSettings()
    out_dir = Path(out_dir)
    with one_blas_thread():
        prep = prepare_study(subjects=subjects, design=design, seed=seed, null=null,
                             noise=noise, voxel_size=mni_voxel_size, settings=settings,
                             image_settings=image_settings, noise_model=noise_model,
                             regions_config=regions_config)
        geometry_stream = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(7)[5])
        _write_scans(out_dir, prep, scanner, geometry_stream, shared_noise)
    bids = out_dir / "bids"
    write_participants(bids, prep.population.participants)
    effect = "no release (null)" if null else "planted release"
    write_dataset_description(
        bids, name=f"petbp simulated [11C]carfentanil study in scanner space ({design})",
        description=f"Simulated by petbp (pipeline.simulate.simulate_scanner_study): "
        f"{subjects} subjects, {design} design, seed {seed}, {effect}, noise level {noise:g}; "
        f"PET in scanner space ({scanner.pet_voxel_mm:g} mm voxels) with head motion, and a "
        "T1w per subject. The truth, including every transform, is in ../truth."
        + (" Noise: the MNI-space study's realization carried into scanner space (a "
           "noise-matched twin)." if shared_noise else ""))
    run = dict(subjects=int(subjects), design=design, seed=int(seed), null=bool(null),
               noise=float(noise), voxel_size=prep.phantom.voxel_size,
               regions_config=prep.phantom.source, space="scanner",
               scanner=dataclasses.asdict(scanner),
               noise_realization="mni_grid_shared" if shared_noise else "scanner_grid")
    write_truth(out_dir / "truth", prep.population, prep.curves, prep.settings,
                prep.image_settings, prep.model,
                phantom_mixing(prep.phantom, prep.image_settings.psf_fwhm), run)
    return bids


def _write_scans(out_dir: Path, prep, scanner: ScannerSettings,
                 geometry_stream: np.random.Generator, shared_noise: bool) -> None:
    bids, transforms = out_dir / "bids", out_dir / "truth" / "transforms"
    frames, phantom = prep.frames, prep.phantom
    shape, affine = tuple(scanner.pet_shape), pet_grid(scanner)
    # Shared noise: the MNI frames carry simulate_study's noise (same stream, same order);
    # otherwise they are noiseless and the noise is drawn on the scanner grid below.
    mni_model = prep.model if shared_noise else dataclasses.replace(prep.model, level=0.0)
    scans = prep.curves.scans
    for pid in prep.population.participants["participant_id"]:
        maps = subject_maps(phantom, prep.voxel_stream, prep.image_settings)
        head = draw_head_geometry(geometry_stream, scanner.pose)
        t1_affine = native_t1_grid(head, scanner.t1, geometry_stream)
        t1 = synthetic_t1(head, t1_affine, scanner.t1, geometry_stream)
        write_nifti(bids / pid / "anat" / f"{pid}_T1w.nii.gz", t1 * 1000.0, t1_affine,
                    xform_code=1)
        write_json(bids / pid / "anat" / f"{pid}_T1w.json", {
            "Modality": "MR", "MagneticFieldStrength": 3,
            "Manufacturer": "petbp simulator",
            "SeriesDescription": "synthetic T1w from MNI152 tissue templates (brain only)"})
        _write_head_truth(transforms, pid, head, t1_affine)
        for i in np.flatnonzero(scans["participant_id"].to_numpy() == pid):
            scan = scans.iloc[i]
            mni = scan_image(maps, prep.curves.tacs[i], prep.derivative[i], frames,
                             mni_model, prep.streams["noise"], phantom.voxel_size)
            pose = draw_pose(geometry_stream, head, scanner.pose)
            centre = (pose @ np.append(head.native_centre, 1.0))[:3]
            motion = draw_motion(geometry_stream, frames.mid, float(frames.end[-1]), centre,
                                 scanner.motion)
            image = _to_scanner(mni, phantom.affine, head, pose, motion, shape, affine)
            del mni
            if not shared_noise:
                add_frame_noise(image, frames, prep.model, prep.streams["noise"],
                                scanner.pet_voxel_mm)
            stem = f"{pid}_task-{scan.task}"
            write_nifti(bids / pid / "pet" / f"{stem}_pet.nii.gz", image, affine,
                        xform_code=1)
            kbol = None if np.isnan(scan.kbol) else float(scan.kbol)
            write_json(bids / pid / "pet" / f"{stem}_pet.json", pet_sidecar(
                frames, task=scan.task, protocol=scan.protocol, dose_mbq=float(scan.dose),
                kbol=kbol, half_life=prep.settings.half_life,
                psf_fwhm=prep.image_settings.psf_fwhm,
                extra={"TaskDescription": TASK_TEXT.get(scan.task, scan.task)}))
            _write_motion_truth(transforms, stem, frames, pose, motion, centre)
            log.info("simulated %s in scanner space", stem)


def _write_head_truth(folder: Path, pid: str, head: HeadGeometry, t1_affine: np.ndarray
                      ) -> None:
    write_nifti(folder / f"{pid}_desc-warp_displacement.nii.gz",
                np.moveaxis(head.warp, 0, -1), head.warp_affine, dtype=np.float32)
    write_json(folder / f"{pid}_anatomy.json", {
        "Description": "Native (T1w world) -> MNI mapping of the simulated subject: "
        "mni = y + u(y), y = affine_mni_from_native @ native; u is the displacement field "
        "(mm, last axis x/y/z, RAS) of the _desc-warp_displacement image, linearly "
        "interpolated on its grid (MNI mm), nearest value outside it.",
        "affine_mni_from_native": head.affine_mni_from_native.tolist(),
        "warp": f"{pid}_desc-warp_displacement.nii.gz",
        "t1_affine": np.asarray(t1_affine).tolist(),
    })


def _write_motion_truth(folder: Path, stem: str, frames: Frames, pose: np.ndarray,
                        motion: np.ndarray, centre: np.ndarray) -> None:
    params = params_from_matrix(motion, centre)
    table = pd.DataFrame(params, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                          "rot_z"])
    table.insert(0, "frame_end", frames.end_seconds)
    table.insert(0, "frame_start", frames.start_seconds)
    table["framewise_displacement"] = framewise_displacement(params)
    write_table(folder / f"{stem}_motion.tsv", table)
    write_json(folder / f"{stem}_motion.json", {
        "Description": "True head pose and motion of the scan. scanner_from_native maps "
        "T1w-world (native) points to PET scanner points at scan start; row k of the table "
        "is the rigid motion_k (scanner point at scan start -> scanner point in frame k, at "
        "the frame's mid-time) as translations (mm) and rotations (radians, R = Rz Ry Rx) "
        "about centre_mm (the head centre in the scanner).",
        "scanner_from_native": np.asarray(pose).tolist(),
        "centre_mm": np.asarray(centre).tolist(),
        "motion": np.asarray(motion).tolist(),
    })


def read_scanner_truth(truth_dir: str | PathLike, participant_id: str, task: str
                       ) -> ScannerTruth:
    """The true geometry of one scan of a simulated scanner-space study.

    Parameters
    ----------
    truth_dir : path-like
        ``out_dir/truth`` of :func:`simulate_scanner_study`.
    participant_id : str
        ``sub-XX``.
    task : str

    Returns
    -------
    ScannerTruth
    """
    folder = Path(truth_dir) / "transforms"
    anatomy = read_json(folder / f"{participant_id}_anatomy.json")
    warp_img = nib.load(str(folder / anatomy["warp"]))
    head = HeadGeometry(affine_mni_from_native=np.asarray(anatomy["affine_mni_from_native"]),
                        warp=np.moveaxis(np.asarray(warp_img.dataobj, float), -1, 0),
                        warp_affine=warp_img.affine)
    stem = f"{participant_id}_task-{task}"
    meta = read_json(folder / f"{stem}_motion.json")
    return ScannerTruth(head=head, t1_affine=np.asarray(anatomy["t1_affine"]),
                        scanner_from_native=np.asarray(meta["scanner_from_native"]),
                        motion=np.asarray(meta["motion"]),
                        table=read_table(folder / f"{stem}_motion.tsv"))
