"""MRTM, MRTM2 and reference Logan against kinfitr 0.9.1 on its simref data and real TACs.

Reference data: ../shared/validation (see its README). Differences from kinfitr are
expected from one design choice: petbp integrates frame-averaged curves (running integral
averaged over each frame), kinfitr integrates point values at mid-frame by trapezoids.
The simref targets happen to be mid-frame samples, which favours kinfitr there: on the
noiseless simref curves petbp's MRTM BP_ND is +0.012 off the truth for ROI1 (BP ~1.5),
+0.007 for ROI2 and +0.002 for ROI3. Tolerances below are that offset plus noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.frames import Frames
from pipeline.kinetics.logan import fit_logan_ref
from pipeline.kinetics.mrtm import fit_mrtm, fit_mrtm2
from pipeline.kinetics.srtm import fit_srtm_bf
from pipeline.tables import read_tacs

#: External reference data, ``../shared/validation`` relative to the repository root.
VALIDATION = Path(__file__).resolve().parents[3] / "shared" / "validation"
SIMREF = VALIDATION / "kinfitr_simref"
REAL = VALIDATION / "real_tacs"
ROIS = ["ROI1", "ROI2", "ROI3"]

pytestmark = pytest.mark.skipif(not VALIDATION.is_dir(), reason="validation data not present")


def _simref_fits() -> pd.DataFrame:
    """petbp fits of every simref PET with each kinfitr variant's settings."""
    tacs = pd.read_csv(SIMREF / "simref_tacs.csv")
    kinfitr = pd.read_csv(SIMREF / "simref_kinfitr_reference_fits.csv")
    rows = []
    for pet, g in tacs.groupby("PET", sort=False):
        g = g[g["Duration"] > 0]  # drop kinfitr's dummy zero-length frame
        frames = Frames(g["StartTime"].to_numpy(), (g["StartTime"] + g["Duration"]).to_numpy())
        ref, data = g["Reference"].to_numpy(), g[ROIS].to_numpy()
        w = g["Weights"].to_numpy()
        k2p = kinfitr.loc[(kinfitr["PET"] == pet)
                          & (kinfitr["model"] == "mrtm2_k2p_mrtm1ROI1"), "k2prime_used"].iloc[0]
        last10 = frames.mid[-10]  # kinfitr tstar = 10 frames: the last 10 frames
        fits = {
            "mrtm1": fit_mrtm(frames, ref, data, weights=w),
            "mrtm2_k2p_0.1": fit_mrtm2(frames, ref, data, k2prime=0.1, weights=w),
            "mrtm2_k2p_mrtm1ROI1": fit_mrtm2(frames, ref, data, k2prime=k2p, weights=w),
            # kinfitr's refLogan ignores weights unless dur is given
            "refLogan_k2p_0.1_tstar10frames": fit_logan_ref(
                frames, ref, data, k2prime=0.1, t_star=last10),
            "refLogan_k2p_mrtm1ROI1_tstar10frames": fit_logan_ref(
                frames, ref, data, k2prime=k2p, t_star=last10),
            "refLogan_k2p_mrtm1ROI1_tstar10frames_dur": fit_logan_ref(
                frames, ref, data, k2prime=k2p, t_star=last10, weights=w),
            "refLogan_k2p_mrtm1ROI1_tstar30min": fit_logan_ref(
                frames, ref, data, k2prime=k2p, t_star=30),
        }
        for model, fit in fits.items():
            for j, roi in enumerate(ROIS):
                rows.append({"PET": pet, "model": model, "region": roi, "ours": fit.bp_nd[j]})
    ours = pd.DataFrame(rows)
    truth = pd.read_csv(SIMREF / "simref_true_parameters.csv")[["PET", "region", "bp_true"]]
    merged = ours.merge(kinfitr[["PET", "model", "region", "bp"]], on=["PET", "model", "region"])
    return merged.merge(truth, on=["PET", "region"])


@pytest.fixture(scope="module")
def simref() -> pd.DataFrame:
    return _simref_fits()


def test_simref_every_variant_compared(simref):
    """All 7 linear variants x 20 PETs x 3 regions were matched to kinfitr rows."""
    assert len(simref) == 7 * 20 * 3 and simref["ours"].notna().all()


def test_simref_agrees_with_kinfitr_per_pet(simref):
    """|petbp - kinfitr| <= 0.03 for every PET, region and variant (measured max 0.026).

    0.03 = the mid-frame-sampling offset (0.012 for ROI1) plus noise propagated
    differently by the two integration schemes. Not for kinfitr's ``dur`` Logan variant:
    given frame durations kinfitr changes its integration (differences up to 0.06 per
    PET); that variant is checked by RMSE against the truth only.
    """
    same = simref[~simref["model"].str.endswith("_dur")]
    diff = (same["ours"] - same["bp"]).abs()
    assert diff.max() <= 0.03, same.loc[diff.idxmax()]
    assert diff.median() < 0.01  # typical agreement is much closer


def test_simref_rmse_vs_truth_no_worse_than_kinfitr(simref):
    """RMSE vs the true BP_ND is within kinfitr's + 0.006 for each variant and region.

    Measured worst excess: 0.0051 (MRTM2 with MRTM's ROI1 k2', ROI1), all of it the
    mid-frame-sampling offset of these simulated data (see module docstring).
    """
    def rmse(x):
        return pd.Series({"ours": np.sqrt(np.mean((x["ours"] - x["bp_true"]) ** 2)),
                          "kinfitr": np.sqrt(np.mean((x["bp"] - x["bp_true"]) ** 2))})

    table = simref.groupby(["model", "region"])[["ours", "bp", "bp_true"]].apply(rmse)
    excess = table["ours"] - table["kinfitr"]
    assert excess.max() <= 0.006, table


def _lr_mean(table, base: str) -> np.ndarray:
    cortical = {"insula", "rostralanteriorcingulate", "lateraloccipital"}
    left, right = (f"ctx-lh-{base}", f"ctx-rh-{base}") if base in cortical else \
        (f"Left-{base}", f"Right-{base}")
    return (table.column(left) + table.column(right)) / 2


CLEAN_SCANS = ["sub-002_ses-baseline", "sub-002_ses-rescan", "sub-002_ses-rescan2",
               "sub-004_ses-baseline", "sub-004_ses-rescan", "sub-018_ses-baseline"]


@pytest.mark.parametrize("scan", CLEAN_SCANS)
def test_real_tacs_agree_with_kinfitr(scan):
    """Real TACs (cerebellar reference, no weights): MRTM, MRTM2 and Logan (t* 30 min)
    within 0.015 of kinfitr's BP_ND (measured max 0.0124, amygdala MRTM: integration
    scheme on 10-min late frames); MRTM is flagged nonphysical exactly where kinfitr's
    k2' < 0 and returns the basis-function SRTM estimate there."""
    name = f"{scan}_desc-gtmseg_tacs.tsv"
    ref_fits = pd.read_csv(REAL / "kinfitr_reference_fits_cerebellum_ref.csv")
    ref_fits = ref_fits[ref_fits["file"] == name]
    table = read_tacs(REAL / name)
    ref = _lr_mean(table, "Cerebellum-Cortex")
    bases = [r.replace(" (L/R mean)", "") for r in ref_fits["region"]]
    data = np.column_stack([_lr_mean(table, b) for b in bases])
    k2p = float(ref_fits["k2prime_used"].iloc[0])
    mrtm = fit_mrtm(table.frames, ref, data)
    mrtm2 = fit_mrtm2(table.frames, ref, data, k2prime=k2p)
    logan = fit_logan_ref(table.frames, ref, data, k2prime=k2p, t_star=30)
    assert logan.used.sum() == ref_fits["refLogan_frames_used"].iloc[0]
    physical = ref_fits["mrtm1_k2prime"].to_numpy() > 0
    flagged = np.array(["nonphysical" in f for f in mrtm.flags])
    assert np.array_equal(flagged, ~physical)
    # where MRTM is nonphysical its estimates are basis-function SRTM's (finite, bounded)
    assert np.isfinite(mrtm.bp_nd).all()
    if flagged.any():
        bf = fit_srtm_bf(table.frames, ref, data[:, flagged])
        assert np.array_equal(mrtm.bp_nd[flagged], bf.bp_nd)
    assert np.abs(mrtm.bp_nd - ref_fits["mrtm1_bp"])[physical].max() <= 0.015
    assert np.abs(mrtm2.bp_nd - ref_fits["mrtm2_bp"]).max() <= 0.015
    assert np.abs(logan.bp_nd - ref_fits["refLogan_bp_tstar30min"]).max() <= 0.015


def test_real_late_acquisition_is_refused_not_fitted():
    """sub-PF03 run-2 starts at 142 min (a second acquisition): MRTM and Logan refuse it,
    naming the file."""
    from pipeline.errors import InputError

    table = read_tacs(REAL / "sub-PF03_ses-test_run-2_desc-gtmseg_tacs.tsv")
    ref = _lr_mean(table, "Cerebellum-Cortex")
    data = _lr_mean(table, "Putamen")
    with pytest.raises(InputError, match=r"tacs\.tsv: mrtm: the first frame starts 141\.733 min"):
        fit_mrtm(table.frames, ref, data)
    with pytest.raises(InputError, match="logan_ref: the first frame starts"):
        fit_logan_ref(table.frames, ref, data, t_star=180)
