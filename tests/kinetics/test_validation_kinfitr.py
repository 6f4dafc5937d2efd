"""SRTM, basis-function SRTM and SRTM2 against kinfitr's simref truth and fits, and real TACs.

Reference data: ../shared/validation (see its README). kinfitr simulated ``simref`` by
sampling SRTM at frame mid-times; petbp fits frame averages, so on the noiseless curves an
exact frame-integrating SRTM sits slightly above the truth (measured here: +0.012, +0.006
and +0.001 in BP_ND for ROI1-3). Tolerances below are that offset plus Monte Carlo spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.frames import Frames
from pipeline.kinetics.srtm import fit_srtm, fit_srtm_bf
from pipeline.kinetics.srtm2 import fit_srtm2
from pipeline.tables import read_tacs

#: External reference data, ``../shared/validation`` relative to the repository root.
VALIDATION = Path(__file__).resolve().parents[3] / "shared" / "validation"
SIMREF = VALIDATION / "kinfitr_simref"
REAL = VALIDATION / "real_tacs"
ROIS = ["ROI1", "ROI2", "ROI3"]

pytestmark = pytest.mark.skipif(not SIMREF.is_dir(), reason="validation data not present")


def _pets(path: Path, ref_col: str, roi_cols: list[str]):
    """(PET, frames, ref, tacs) per PET, dropping kinfitr's dummy zero-length first frame."""
    table = pd.read_csv(path)
    for pet, g in table.groupby("PET", sort=False):
        g = g[g["frame"] > 1]
        frames = Frames(g["StartTime"].to_numpy(), (g["StartTime"] + g["Duration"]).to_numpy())
        yield pet, frames, g[ref_col].to_numpy(), g[roi_cols].to_numpy(), g


@pytest.fixture(scope="module")
def simref() -> pd.DataFrame:
    """Our fits of the 20 noisy and noiseless PETs, merged with truth and kinfitr's fits."""
    kinfitr = pd.read_csv(SIMREF / "simref_kinfitr_reference_fits.csv")
    rows = []
    for pet, frames, ref, tacs, g in _pets(SIMREF / "simref_tacs.csv", "Reference", ROIS):
        weights = g["Weights"].to_numpy()  # kinfitr's own weights, as in its "srtm" variant
        k2p = kinfitr.query("PET == @pet and model == 'srtm2_k2p_mrtm1ROI1'")["k2prime_used"]
        fits = {"srtm": fit_srtm(frames, ref, tacs, weights=weights),
                "srtm_bf": fit_srtm_bf(frames, ref, tacs, weights=weights),
                "srtm2": fit_srtm2(frames, ref, tacs, weights=weights, k2prime=k2p.iloc[0])}
        for i, roi in enumerate(ROIS):
            row = {"PET": pet, "region": roi}
            row.update({name: fit.bp_nd[i] for name, fit in fits.items()})
            row["flags"] = "".join(fit.flags[i] for fit in fits.values())
            row["r1"] = fits["srtm"].r1[i]
            rows.append(row)
    noiseless = []
    cols = [f"{r}_model" for r in ROIS]
    for pet, frames, ref, tacs, _ in _pets(SIMREF / "simref_noiseless_model_tacs.csv",
                                           "Reference_model", cols):
        fit = fit_srtm(frames, ref, tacs)
        noiseless += [{"PET": pet, "region": roi, "srtm_noiseless": fit.bp_nd[i]}
                      for i, roi in enumerate(ROIS)]
    truth = pd.read_csv(SIMREF / "simref_true_parameters.csv")
    theirs = kinfitr.pivot_table(index=["PET", "region"], columns="model", values="bp")
    theirs.columns = [f"kinfitr_{c}" for c in theirs.columns]
    return (pd.DataFrame(rows).merge(pd.DataFrame(noiseless), on=["PET", "region"])
            .merge(truth, on=["PET", "region"]).merge(theirs.reset_index(), on=["PET", "region"]))


def _rmse(error: pd.Series) -> float:
    return float(np.sqrt(np.mean(np.square(error))))


def test_simref_fits_are_clean(simref):
    """No flags on any of the 60 noisy region fits (3 models)."""
    assert (simref["flags"] == "").all()


def test_simref_noiseless_offset_is_the_mid_frame_sampling(simref):
    """On kinfitr's noiseless curves our SRTM is within 0.02 of the mid-frame truth."""
    offset = simref["srtm_noiseless"] - simref["bp_true"]
    # measured: mean +0.0119 / +0.0065 / +0.0010 (ROI1-3), max 0.0167: sampled vs averaged
    assert offset.abs().max() < 0.02
    assert offset.groupby(simref["region"]).mean()["ROI1"] > 0.005  # the known sign


@pytest.mark.parametrize("region", ROIS)
def test_simref_srtm_rmse_no_worse_than_kinfitr(simref, region):
    """SRTM RMSE vs truth <= kinfitr's SRTM RMSE + 0.006 (the sampling offset, above)."""
    q = simref[simref["region"] == region]
    ours = _rmse(q["srtm"] - q["bp_true"])
    theirs = _rmse(q["kinfitr_srtm"] - q["bp_true"])
    # measured: ours 0.0339 / 0.0318 / 0.0205, kinfitr 0.0296 / 0.0299 / 0.0197
    assert ours <= theirs + 0.006
    # against our own noiseless fits (same model, only noise differs) we match kinfitr:
    # measured 0.0304 / 0.0304 / 0.0199
    assert _rmse(q["srtm"] - q["srtm_noiseless"]) <= theirs + 0.002


@pytest.mark.parametrize("region", ROIS)
def test_simref_srtm2_rmse_no_worse_than_kinfitr(simref, region):
    """SRTM2 with kinfitr's k2' (MRTM on ROI1) is as accurate as kinfitr's SRTM2 + 0.006."""
    q = simref[simref["region"] == region]
    ours = _rmse(q["srtm2"] - q["bp_true"])
    theirs = _rmse(q["kinfitr_srtm2_k2p_mrtm1ROI1"] - q["bp_true"])
    # measured: ours 0.0347 / 0.0660 / 0.0177, kinfitr 0.0301 / 0.0630 / 0.0181
    assert ours <= theirs + 0.006


def test_simref_basis_functions_match_nonlinear(simref):
    """The refined 100-basis grid gives the nonlinear SRTM's BP_ND within 0.002."""
    assert (simref["srtm_bf"] - simref["srtm"]).abs().max() < 0.002


def test_simref_agrees_with_kinfitr_fit_by_fit(simref):
    """Per fit, our SRTM and kinfitr's differ by the sampling offset plus < 0.01."""
    diff = simref["srtm"] - simref["kinfitr_srtm"]
    # measured max |diff| 0.0204 (ROI1), mean +0.0122 / +0.0066 / +0.0009
    assert diff.abs().max() < 0.03
    assert (diff - (simref["srtm_noiseless"] - simref["bp_true"])).abs().max() < 0.01


def _lr_mean(tacs, region: str) -> np.ndarray:
    """Mean of the left and right columns of a kinfitr region name like 'insula (L/R mean)'."""
    base = region.replace(" (L/R mean)", "")
    left, right = ((f"ctx-lh-{base}", f"ctx-rh-{base}") if base[0].islower()
                   else (f"Left-{base}", f"Right-{base}"))
    return 0.5 * (tacs.column(left) + tacs.column(right))


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    """Our SRTM on the real TACs kinfitr fitted (L/R means, cerebellar cortex reference)."""
    kinfitr = pd.read_csv(REAL / "kinfitr_reference_fits_cerebellum_ref.csv")
    rows = []
    for name, g in kinfitr.groupby("file", sort=False):
        tacs = read_tacs(REAL / name)
        ref = _lr_mean(tacs, "Cerebellum-Cortex (L/R mean)")
        data = np.column_stack([_lr_mean(tacs, region) for region in g["region"]])
        fit = fit_srtm(tacs.frames, ref, data)  # kinfitr: no weights
        rows.append(pd.DataFrame({"file": name, "region": g["region"].to_numpy(),
                                  "kinfitr": g["srtm_bp"].to_numpy(), "ours": fit.bp_nd,
                                  "flags": fit.flags}))
    table = pd.concat(rows, ignore_index=True)
    table["clean_scan"] = table["file"].str.match(r"sub-0(02|04|18)_")
    table["comparable"] = (table["kinfitr"] > 1e-3) & (table["kinfitr"] < 14.9) & \
        (table["flags"] == "")
    return table


def test_real_tacs_clean_scans_match_kinfitr(real):
    """Clean scans: where neither fit hit a bound, BP_ND agrees with kinfitr within 0.015."""
    q = real[real["clean_scan"] & real["comparable"]]
    diff = q["ours"] - q["kinfitr"]
    assert len(q) == 47  # 48 region fits, one where kinfitr hit its bound
    # measured max |diff| 0.0105 (amygdala, small and noisy; 0.9 %), median +0.0018:
    # frame averaging vs kinfitr's mid-frame interpolation raises BP_ND a little
    assert diff.abs().max() < 0.015
    assert 0 < diff.median() < 0.004


def test_real_tacs_noisy_scans_agree_or_flag(real):
    """Noisy low-binding scans: every fit is finite, median agreement within 0.005."""
    q = real[~real["clean_scan"]]
    assert np.isfinite(q["ours"]).all()
    ok = q[q["comparable"]]
    diff = (ok["ours"] - ok["kinfitr"]).abs()
    # measured: median 0.0020, max 0.097 (an ill-determined lateral occipital fit whose
    # k2a is near zero: both programs sit on a flat valley of the residual)
    assert diff.median() < 0.005
    assert diff.max() < 0.15


def test_real_tacs_kinfitr_bound_hits_are_flagged(real):
    """Where kinfitr ended on its BP_ND bound of 15, our fit carries a flag.

    Measured: 4 such fits, flagged at_bound and/or large_se (BP_ND SE 48 and more: the
    residual has no minimum the data can place).
    """
    hit = real[real["kinfitr"] >= 14.9]
    assert len(hit) == 4
    assert (hit["flags"] != "").all()


def test_real_tacs_late_acquisition_is_refused():
    """sub-PF03 run-2 starts 142 min after injection: refused with a clear message."""
    tacs = read_tacs(REAL / "sub-PF03_ses-test_run-2_desc-gtmseg_tacs.tsv")
    ref = _lr_mean(tacs, "Cerebellum-Cortex (L/R mean)")
    with pytest.raises(InputError, match="starts at injection"):
        fit_srtm_bf(tacs.frames, ref, _lr_mean(tacs, "Putamen (L/R mean)"))
