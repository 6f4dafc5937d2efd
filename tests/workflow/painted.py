"""Small BIDS-PET studies for workflow tests: region TACs of the fast ROI simulator painted
into the regions of config/regions.yaml on a coarse MNI grid, with independent voxel noise.

Much faster than the image simulator and enough to run every rule; the truth is the ROI
simulator's (planted release per region, or none with ``null=True``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from factories import make_bids

from pipeline.regions import build_masks, load_region_config
from pipeline.simulate.roi import simulate_region_tacs

__all__ = ["grid", "write_painted_study"]

#: Activity of brain voxels outside the regions, relative to the reference TAC (non-specific
#: uptake, as in the occipital reference); outside the brain the images are 0.
BACKGROUND = 1.0


def grid(voxel_size: float = 4.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """An MNI grid (LAS, corner at (90, -126, -72) mm) with ``voxel_size`` mm voxels."""
    shape = tuple(int(np.ceil(extent / voxel_size)) + 1 for extent in (182, 218, 182))
    affine = np.diag([-voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = [90.0, -126.0, -72.0]
    return shape, affine


def _brain_on(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """The MNI152 brain mask on a grid (nearest 1 mm voxel of each voxel centre), so the
    images look like a brain in MNI space to the space detection."""
    from pipeline.space import mni_brain_mask

    mask, mask_affine = mni_brain_mask()
    ijk = np.indices(shape).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    inverse = np.linalg.inv(mask_affine)
    vox = np.rint(world @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
    ok = np.all((vox >= 0) & (vox < mask.shape), axis=1)
    inside = np.zeros(len(vox), bool)
    inside[ok] = mask[tuple(vox[ok].T)]
    return inside.reshape(shape)


def write_painted_study(root: Path, *, subjects: int = 4, seed: int = 0, null: bool = False,
                        design: str = "windows", voxel_size: float = 4.0,
                        voxel_noise: float = 0.05, region_noise: float = 1.0,
                        missing: tuple[tuple[str, str], ...] = ()) -> Path:
    """Write a painted study under ``root`` and return ``root``.

    ``voxel_noise`` is the SD of the multiplicative voxel noise; ``missing`` lists
    (subject label, task) scans to leave out.
    """
    study = simulate_region_tacs(subjects=subjects, design=design, seed=seed, null=null,
                                 noise=region_noise)
    shape, affine = grid(voxel_size)
    masks = build_masks(load_region_config("config/regions.yaml"), shape, affine)
    best = np.argmax(masks.weights, axis=0)
    inside = masks.weights.max(axis=0) > 0.5
    column = {name: study.regions.index(name) for name in masks.names}
    brain = _brain_on(shape, affine)
    rng = np.random.default_rng(seed + 1000)
    labels = [f"{i + 1:02d}" for i in range(subjects)]
    scan_rows = {(pid, task): i for i, (pid, task) in
                 enumerate(zip(study.scans.participant_id, study.scans.task, strict=True))}

    def data(stem: str, shape4d: tuple) -> np.ndarray:
        sub = stem.split("_")[0].removeprefix("sub-")
        task = stem.split("task-")[1].split("_")[0]
        pid = study.participants.participant_id.iloc[labels.index(sub)]
        tacs = study.tacs[scan_rows[(pid, task)]]
        image = np.zeros(shape4d, np.float32)
        ref = tacs[:, column[masks.reference]]
        image[brain] = BACKGROUND * ref  # the rest of the brain (reference-like), none outside
        for i, name in enumerate(masks.names):
            sel = inside & (best == i)
            image[sel] = tacs[:, column[name]]
        noise = 1.0 + voxel_noise * rng.standard_normal(shape4d)
        return (image * noise).astype(np.float32)

    tasks = sorted(set(study.scans.task), key=list(study.scans.task).index)
    make_bids(root, subjects=labels, tasks=tasks, shape=shape, affine=affine,
              durations=list(np.round(study.frames.duration * 60.0, 6)), units="Bq/mL",
              data=data, participants={
                  "participant_id": [f"sub-{s}" for s in labels],
                  "resilience": study.participants.resilience.tolist(),
                  "age": study.participants.age.tolist(),
                  "sex": study.participants.sex.tolist()})
    for sub, task in missing:
        for path in Path(root).glob(f"sub-{sub}/pet/sub-{sub}_task-{task}_pet.*"):
            path.unlink()
    return Path(root)
