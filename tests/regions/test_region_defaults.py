"""The default region config on the MNI 2 mm grid: every region present, plausible volumes."""

from __future__ import annotations

import pytest

from pipeline.regions import build_masks, label_image, load_region_config
from pipeline.space import mni_grid

#: Plausible volumes (mL) of the default regions on the 2 mm grid. Ranges come from
#: MRI volumetry of adults (amygdala 1-3 mL, accumbens 0.3-1.5, thalamus 6-12, caudate 2.5-5,
#: putamen 4-8 mL per side) widened for atlas thresholding; the PAG sphere is 81 voxels.
PLAUSIBLE_ML = {
    "amygdala_l": (1.0, 3.0), "amygdala_r": (1.0, 3.0), "nacc_l": (0.3, 1.5),
    "nacc_r": (0.3, 1.5), "thalamus_l": (6.0, 12.0), "thalamus_r": (6.0, 12.0),
    "caudate_l": (2.5, 5.0), "caudate_r": (2.5, 5.0), "putamen_l": (4.0, 8.0),
    "putamen_r": (4.0, 8.0), "acc": (5.0, 20.0), "insula_l": (4.0, 12.0),
    "insula_r": (4.0, 12.0), "pag": (0.648, 0.648), "occipital": (50.0, 250.0),
}


@pytest.fixture(scope="module")
def default_masks():
    """The default regions on the 2 mm MNI grid (built once: ~10 s)."""
    return build_masks(load_region_config(), *mni_grid(2))


def test_build_masks_default_volumes_plausible(default_masks):
    """Each default region has a volume in its plausible range; prints the table."""
    print("\nregion         voxels   volume_ml")
    for row in default_masks.summary():
        print(f"{row['region']:<14} {row['n_voxels']:>6}   {row['volume_ml']:8.3f}")
    for row in default_masks.summary():
        low, high = PLAUSIBLE_ML[row["region"]]
        # pag: 81 voxels of 0.008 mL; float sums of 0/1 weights are exact here.
        assert low - 1e-9 <= row["volume_ml"] <= high + 1e-9, row


def test_build_masks_default_inside_mni_fov(default_masks):
    """Nothing of the default regions lies outside the MNI 2 mm grid."""
    assert default_masks.outside_fov_fraction.max() == 0.0


def test_label_image_default_regions_disjoint(default_masks):
    """Default regions do not overlap: the label image keeps every region's voxels."""
    labels = label_image(default_masks)
    for i, name in enumerate(default_masks.names):
        assert (labels == i + 1).sum() == default_masks.n_voxels[i], name
