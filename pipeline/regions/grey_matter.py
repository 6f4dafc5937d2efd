"""Grey-matter probability on a PET grid, for grey-matter-weighted region masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["grey_matter_probability"]


def grey_matter_probability(shape: tuple[int, int, int], affine: np.ndarray,
                            image: Path | None = None) -> np.ndarray:
    """Grey-matter probability (0-1) on a voxel grid, float32.

    Parameters
    ----------
    shape : tuple of int
        Target grid shape.
    affine : ndarray
        Target voxel-to-mm affine (4 x 4).
    image : Path, default=None
        A user tissue map in MNI space (0-1); None uses nilearn's MNI152 (ICBM 2009a)
        grey-matter template (1 mm), rescaled to 0-1 as ``load_mni152_gm_template`` does.

    Returns
    -------
    ndarray
        float32, ``shape``.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    if image is None:
        from pipeline.space import mni_template_file

        src = nib.load(str(mni_template_file("gm")))
        data = np.asarray(src.dataobj, np.float32)
        data /= data.max()  # stored as 0-255 integers; nilearn rescales the same way
    else:
        src = nib.load(str(image))
        data = np.asarray(src.dataobj, np.float32)
    src = nib.Nifti1Image(data, src.affine)
    resampled = resample_img(src, target_affine=affine, target_shape=shape,
                             interpolation="linear", force_resample=True, copy_header=True)
    return np.clip(np.asarray(resampled.dataobj, np.float32), 0.0, 1.0)
