"""PETPrep-style inputs (``preproc_dir``): matching, timing, and one clear error per problem."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from factories import make_bids, make_preproc, scan_files, write_image

from pipeline import bids
from pipeline.cli import main
from pipeline.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path):
    """A raw dataset (2 subjects x 2 tasks) and its PETPrep-style copy."""
    raw = make_bids(tmp_path / "bids")
    return raw, make_preproc(raw, tmp_path / "bids" / "derivatives" / "petprep")


def test_scans_use_the_preprocessed_images(study):
    """Each scan's image is the MNI152 derivative; the raw image is named but not read."""
    raw, preproc = study
    for image in scan_files(raw):  # raw images that cannot be read: they must not be
        image.write_bytes(b"not a nifti")
    scans = bids.discover_scans(raw, preproc_dir=preproc)
    assert len(scans) == 4
    for scan in scans:
        assert scan.image_path.parent == preproc / scan.rel_dir
        assert scan.image_path.name == \
            f"{scan.stem}_space-MNI152NLin2009cAsym_desc-preproc_pet.nii.gz"
        assert scan.raw_image_path == raw / scan.rel_dir / f"{scan.stem}_pet.nii.gz"


@pytest.mark.parametrize("space", ["MNI152NLin6Asym", "MNI152Lin", "MNI152NLin2009aAsym"])
def test_template_variants_and_res_entity(tmp_path, space):
    """Any MNI152 variant is accepted, with or without a res- entity."""
    raw = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"])
    preproc = make_preproc(raw, tmp_path / "pre", space=f"{space}_res-2")
    (scan,) = bids.discover_scans(raw, preproc_dir=preproc)
    assert f"space-{space}_res-2_desc-preproc" in scan.image_path.name


def test_timing_from_the_derivative_sidecar_else_the_raw_one(tmp_path):
    """The derivative's own frame times win; without its sidecar the raw ones are used."""
    raw = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"])
    with_sidecar = make_preproc(raw, tmp_path / "a")
    side = next(with_sidecar.rglob("*_desc-preproc_pet.json"))
    fields = json.loads(side.read_text())
    fields["FrameTimesStart"] = [t + 30.0 for t in fields["FrameTimesStart"]]
    side.write_text(json.dumps(fields))
    (own,) = bids.discover_scans(raw, preproc_dir=with_sidecar)
    assert own.frames.start[0] == pytest.approx(0.5)  # minutes
    assert own.sidecar_path == side
    (fallback,) = bids.discover_scans(raw, preproc_dir=make_preproc(raw, tmp_path / "b",
                                                                    sidecars=False))
    assert fallback.frames.start[0] == 0.0
    assert fallback.sidecar_path.name == "sub-01_task-rest_pet.json"


def _problems(raw, preproc):
    scans, problems = bids.inspect_scans(raw, preproc_dir=preproc)
    return scans, [str(p) for p in problems]


def test_raw_scan_without_preprocessed_image(study):
    raw, preproc = study
    next(preproc.rglob("sub-02_task-rejection_*_desc-preproc_pet.nii.gz")).unlink()
    scans, problems = _problems(raw, preproc)
    assert len(scans) == 3 and len(problems) == 1
    assert "sub-02_task-rejection_pet.nii.gz: no preprocessed image in" in problems[0]
    assert "sub-02_task-rejection_space-MNI152<variant>_desc-preproc_pet.nii.gz" in problems[0]


def test_preprocessed_image_in_another_space(study):
    raw, preproc = study
    image = next(preproc.rglob("sub-01_task-rejection_*_desc-preproc_pet.nii.gz"))
    image.rename(image.with_name("sub-01_task-rejection_space-T1w_desc-preproc_pet.nii.gz"))
    _, problems = _problems(raw, preproc)
    assert len(problems) == 1
    assert "sub-01_task-rejection_space-T1w_desc-preproc_pet.nii.gz: the preprocessed image " \
        "of sub-01_task-rejection_pet.nii.gz is in another space than MNI152" in problems[0]


def test_preprocessed_image_without_raw_scan(study):
    raw, preproc = study
    for path in (raw / "sub-02/pet").glob("sub-02_task-acceptance_pet.*"):
        path.unlink()
    _, problems = _problems(raw, preproc)
    assert len(problems) == 1
    assert "sub-02_task-acceptance_space-MNI152NLin2009cAsym_desc-preproc_pet.nii.gz: a " \
        "preprocessed image without a raw scan" in problems[0]


def test_two_mni_variants_for_one_scan(study):
    raw, preproc = study
    image = next(preproc.rglob("sub-01_task-rejection_*_desc-preproc_pet.nii.gz"))
    (image.parent / "sub-01_task-rejection_space-MNI152NLin6Asym_desc-preproc_pet.nii.gz"
     ).write_bytes(image.read_bytes())
    _, problems = _problems(raw, preproc)
    assert len(problems) == 1 and "more than one MNI152 image for this scan" in problems[0]


@pytest.mark.parametrize(("description", "message"), [
    (None, "preproc_dir has no dataset_description.json"),
    ({"Name": "x", "BIDSVersion": "1.9.0", "DatasetType": "raw"},
     "preproc_dir is not a derivatives dataset (DatasetType 'raw')"),
])
def test_preproc_dir_not_a_derivatives_dataset(study, description, message):
    raw, preproc = study
    if description is None:
        (preproc / "dataset_description.json").unlink()
    else:
        (preproc / "dataset_description.json").write_text(json.dumps(description))
    with pytest.raises(InputError, match=re.escape(message)):
        bids.inspect_scans(raw, preproc_dir=preproc)


def test_check_reports_the_image_of_each_scan(study, tmp_path, capsys, monkeypatch,
                                              toy_images_in_mni):
    """``petbp check`` names the preprocessed image each scan uses."""
    from pipeline.cli import check

    monkeypatch.setattr(check, "_design_summary", lambda *args, **kwargs: [])
    raw, preproc = study
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"preproc_dir": str(preproc),
                                      "output_dir": str(tmp_path / "out")}))
    status = main(["check", str(raw), "--config", str(config)])
    out, err = capsys.readouterr()
    assert status == 0, err
    image = preproc / "sub-01/pet/sub-01_task-acceptance_space-MNI152NLin2009cAsym_desc-" \
        "preproc_pet.nii.gz"
    assert f"image of sub-01_task-acceptance: {image} (preprocessed; raw " \
        "sub-01_task-acceptance_pet.nii.gz not read)" in out


def test_preproc_dir_inside_output_dir(study, tmp_path, capsys):
    """Inside output_dir: ``petbp check`` and the workflow refuse it, writing nothing."""
    from pipeline.bids.preprocessed import check_preproc_location

    raw, preproc = study
    out = preproc.parent
    with pytest.raises(ConfigError, match="is inside output_dir"):
        check_preproc_location(preproc, out)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"preproc_dir": str(preproc), "output_dir": str(out),
                                      "bids_dir": str(raw)}))
    assert main(["check", str(raw), "--config", str(config)]) == 1
    assert "is inside output_dir" in capsys.readouterr().err
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-n", "--snakefile",
         str(ROOT / "Snakefile"), "--directory", str(ROOT), "--cores", "1", "--configfile",
         str(config)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert "is inside output_dir" in result.stdout + result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_raw_space_does_not_matter(tmp_path):
    """Raw images in native space (another grid) are fine: only the derivative is read."""
    raw = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"])
    preproc = make_preproc(raw, tmp_path / "pre")
    write_image(scan_files(raw)[0], np.ones((3, 3, 3, 5), np.float32), np.eye(4))
    (scan,) = bids.discover_scans(raw, preproc_dir=preproc)
    assert scan.shape == (6, 6, 6, 5)
