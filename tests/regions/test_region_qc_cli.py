"""Tests of the region QC figure and of ``petbp regions``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.regions import build_masks, load_region_config
from pipeline.regions.qc import mean_image, plot_region_qc


@pytest.fixture
def block_masks(tmp_path, label_atlas, write_config, grid8):
    config = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1]}\n"
                                    "  b: {labels: [2]}\n")
    return config, build_masks(load_region_config(config), *grid8)


def test_plot_region_qc_writes_png_with_scan_row(tmp_path, block_masks, grid8):
    """The figure is a PNG; with a background it has the scan row too (taller image)."""
    _, masks = block_masks
    only_mni = plot_region_qc(masks, None, tmp_path / "a.png")
    both = plot_region_qc(masks, np.ones((*grid8[0], 3)), tmp_path / "b.png")
    assert only_mni.read_bytes()[:8] == both.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    assert mpimg.imread(both).shape[0] > mpimg.imread(only_mni).shape[0]


def test_mean_image_weights_frames_by_duration(grid8):
    """The background of a PetImage is the duration-weighted mean: (1*60 + 4*180)/240 = 3.25."""
    from types import SimpleNamespace

    from pipeline.frames import Frames

    data = np.stack([np.ones(grid8[0]), 4 * np.ones(grid8[0])], axis=-1)
    pet = SimpleNamespace(data=data, frames=Frames.from_bids([0, 60], [60, 180]))
    np.testing.assert_allclose(mean_image(pet, grid8[0]), 3.25, rtol=1e-6)


def test_plot_region_qc_background_on_other_grid(tmp_path, block_masks):
    """A background that is not on the masks' grid is refused and nothing is written."""
    _, masks = block_masks
    with pytest.raises(InputError, match=r"background image has spatial shape \(5, 5, 5\)"):
        plot_region_qc(masks, np.ones((5, 5, 5)), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_cli_regions_prints_table_and_writes_files(tmp_path, block_masks, grid8, capsys):
    """``petbp regions --image`` uses the image grid and writes the TSV and figure."""
    config, _ = block_masks
    image = tmp_path / "pet.nii.gz"
    nib.Nifti1Image(np.ones((*grid8[0], 2), np.float32), grid8[1]).to_filename(image)
    status = main(["regions", "--config", str(config), "--image", str(image),
                   "--qc", str(tmp_path / "qc.png"), "--tsv", str(tmp_path / "v.tsv")])
    out = capsys.readouterr().out
    assert status == 0
    assert "reference 'a'" in out and "13.824" in out  # 27 voxels x 0.512 mL
    assert (tmp_path / "qc.png").is_file() and (tmp_path / "v.tsv").is_file()


def test_cli_regions_bad_config_exit_1(tmp_path, label_atlas, write_config, capsys):
    """A config error is printed without a traceback and gives exit status 1."""
    config = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [nothing]}\n")
    assert main(["regions", "--config", str(config)]) == 1
    assert "label 'nothing' is not in atlas 'blocks'" in capsys.readouterr().err


def test_write_region_qc_from_pet_image(tmp_path, block_masks, grid8):
    """write_region_qc builds the masks of a PetImage's grid and draws both rows."""
    from types import SimpleNamespace

    from pipeline.frames import Frames
    from pipeline.regions import write_region_qc

    config, _ = block_masks
    pet = SimpleNamespace(data=np.ones((*grid8[0], 2), np.float32), affine=grid8[1],
                          frames=Frames.from_bids([0, 60], [60, 60]), scan=None, notes=[])
    out = write_region_qc(pet, config, tmp_path / "qc" / "sub-01_regions.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
