"""A small seeded results directory that follows DESIGN.md's output contract.

The report only reads files, so the fixture writes them directly with known values:
6 participants (one without scans, excluded with a logged reason), 5 with a
task-rejection and a task-acceptance scan, baseline (0-45 min) and condition (45-90 min)
windows, 4 target regions plus the occipital reference, two models, group tables, one
group t map and one FWE map in MNI space, and a cluster table. One scan has a frame where
every region is 30 % high (motion-like) and one fit is flagged ``at_bound``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.tables import write_json, write_table

REGIONS = ["amygdala_l", "amygdala_r", "thalamus_l", "caudate_l"]
TRUE_BP = {"amygdala_l": 1.8, "amygdala_r": 1.8, "thalamus_l": 2.7, "caudate_l": 1.7}
DURATIONS_S = [60] * 5 + [120] * 5 + [300] * 4 + [600] * 6  # 20 frames, 90 min
OUTLIER_SCAN = "sub-03_task-rejection"
OUTLIER_FRAME = 12
BOUND_SCAN = "sub-02_task-acceptance"
CONTRASTS = {"rejection": {"baseline": "baseline", "condition": "rejection"},
             "acceptance": {"baseline": "baseline", "condition": "acceptance"}}


def _frames() -> tuple[np.ndarray, np.ndarray]:
    end = np.cumsum(DURATIONS_S).astype(float)
    return end - np.asarray(DURATIONS_S, float), end


def _curves(bp: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth reference TAC and a target approaching (1 + bp) x reference (Bq/mL)."""
    ref = 20000.0 * (1 - np.exp(-t / 3.0)) * np.exp(-t / 80.0) + 3000.0
    return ref, ref * (1 + bp * (1 - np.exp(-t / 15.0)))


def _scan(out: Path, sub: str, task: str, rng: np.random.Generator, release: dict[str, float],
          models: list[str]) -> list[dict]:
    stem = f"sub-{sub}_task-{task}"
    pet = out / f"sub-{sub}" / "pet"
    start, end = _frames()
    mid = (start + end) / 120.0
    columns = {"frame_start": start, "frame_end": end}
    fit_rows, bp_rows, group_rows = [], [], []
    ref = None
    for region in REGIONS:
        base_bp = TRUE_BP[region] * rng.uniform(0.9, 1.1)
        ref, target = _curves(base_bp, mid)
        late = mid > 45
        measured = target * np.where(late, 1 - release.get(region, 0.0) * 0.5, 1.0)
        measured = measured * (1 + 0.02 * rng.standard_normal(mid.size))
        if stem == OUTLIER_SCAN:
            measured[OUTLIER_FRAME] *= 1.30
        columns[region] = measured
        for condition, window in (("baseline", (0, 45)),
                                  (task, (45, 90))):
            used = (mid >= window[0]) & (mid < window[1])
            fitted = np.where(used, target * np.where(late, 1 - release.get(region, 0) * 0.5, 1),
                              np.nan)
            fit_rows.append(pd.DataFrame({
                "frame_start": start, "frame_end": end, "region": region,
                "condition": condition, "measured": measured, "fitted": fitted, "used": used}))
            bp = base_bp * (1 - release.get(region, 0.0)) if condition != "baseline" else base_bp
            flags = "at_bound" if (stem == BOUND_SCAN and region == "caudate_l"
                                   and condition != "baseline") else ""
            bp_rows.append({"region": region, "condition": condition, "model": models[0],
                            "bp_nd": bp, "r1": 1.0, "k2": 0.12, "k2prime": 0.1,
                            "se_bp_nd": 0.05, "n_frames": int(used.sum()), "flags": flags})
            for model in models:
                group_rows.append({
                    "participant_id": f"sub-{sub}", "session": np.nan, "task": task,
                    "run": np.nan, "condition": condition, "window_start": float(window[0]),
                    "window_end": float(window[1]), "region": region, "model": model,
                    "bp_nd": bp * (1.0 if model == models[0] else 0.95), "r1": 1.0,
                    "k2": 0.12, "k2prime": 0.1, "n_voxels": 250, "flags": flags})
    columns["occipital"] = ref
    write_table(pet / f"{stem}_desc-default_tacs.tsv", pd.DataFrame(columns),
                {"TracerName": "carfentanil", "TracerRadionuclide": "C11",
                 "regions": {r: {"volume_ml": 2.0} for r in [*REGIONS, "occipital"]}})
    write_table(pet / f"{stem}_model-{models[0]}_bp.tsv", pd.DataFrame(bp_rows))
    write_table(pet / f"{stem}_model-{models[0]}_fits.tsv", pd.concat(fit_rows))
    return group_rows


def _contrasts(bp: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, contrast, region), _ in bp[bp["condition"] != "baseline"].groupby(
            ["model", "condition", "region"], sort=False):
        sel = bp[(bp["model"] == model) & (bp["region"] == region) & (bp["task"] == contrast)]
        base = sel[sel["condition"] == "baseline"].set_index("participant_id")["bp_nd"]
        cond = sel[sel["condition"] == contrast].set_index("participant_id")["bp_nd"]
        change = 100 * (cond - base) / base
        with np.errstate(divide="ignore", invalid="ignore"):
            test = stats.ttest_rel(cond, base)
        diff = cond - base
        with np.errstate(divide="ignore", invalid="ignore"):  # no release: SD 0
            dz = diff.mean() / diff.std(ddof=1)
        rows.append({"contrast": contrast, "region": region, "model": model, "n": len(diff),
                     "baseline_mean": base.mean(), "condition_mean": cond.mean(),
                     "change_pct_mean": change.mean(), "change_pct_sd": change.std(ddof=1),
                     "t": test.statistic, "df": len(diff) - 1, "p": test.pvalue,
                     "cohen_dz": dz, "ci_low": dz - 0.9, "ci_high": dz + 0.9})
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("p") + 1, "p_fdr", np.minimum(table["p"] * 4, 1.0))
    return table


def _maps(group: Path) -> None:
    affine = np.array([[4.0, 0, 0, -90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])
    ijk = np.indices((46, 55, 46)).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    blob = 5.0 * np.exp(-np.sum((xyz - [-22, -4, -18]) ** 2, axis=1) / (2 * 8.0**2))
    tmap = blob.reshape(46, 55, 46).astype(np.float32)
    nib.save(nib.Nifti1Image(tmap, affine), group / "rejection_model-srtm_tmap.nii.gz")
    logp = np.where(tmap > 3.0, 2.0, 0.0).astype(np.float32)
    nib.save(nib.Nifti1Image(logp, affine), group / "rejection_model-srtm_fwe_logp.nii.gz")
    write_table(group / "rejection_model-srtm_clusters.tsv", pd.DataFrame({
        "cluster_id": [1], "peak_x": [-22.0], "peak_y": [-4.0], "peak_z": [-18.0],
        "peak_t": [5.0], "size_ml": [1.9], "region": ["amygdala_l"]}))


def make_results(root: Path, seed: int = 7) -> tuple[Path, dict]:
    """Write the synthetic study under ``root``; returns (output_dir, config)."""
    rng = np.random.default_rng(seed)
    out, bids = root / "results", root / "bids"
    bids.mkdir(parents=True)
    subjects = [f"{i:02d}" for i in range(1, 7)]
    resilience = rng.uniform(20, 50, len(subjects)).round(0)
    participants = pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects],
                                 "resilience": resilience, "age": rng.integers(20, 40, 6)})
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    models = ["srtm", "logan_ref"]
    rows = []
    for s, score in zip(subjects[:-1], resilience[:-1], strict=True):  # sub-06 has no scans
        amyg = 0.02 + 0.003 * (score - 35) + 0.01 * rng.standard_normal()
        rows += _scan(out, s, "rejection", rng, {"amygdala_l": amyg, "thalamus_l": 0.06}, models)
        rows += _scan(out, s, "acceptance", rng, {"caudate_l": 0.04}, models)
    group = out / "group"
    bp = pd.DataFrame(rows)
    write_table(group / "bp_nd.tsv", bp)
    contrasts = _contrasts(bp)
    write_table(group / "contrasts.tsv", contrasts)
    cor = []
    for method, func in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        sel = bp[(bp["model"] == "srtm") & (bp["region"] == "amygdala_l")
                 & (bp["task"] == "rejection")]
        wide = sel.pivot(index="participant_id", columns="condition", values="bp_nd")
        act = wide["baseline"] - wide["rejection"]
        score = participants.set_index("participant_id").loc[act.index, "resilience"]
        r, p = func(act, score)
        cor.append({"contrast": "rejection", "region": "amygdala_l", "score": "resilience",
                    "n": len(act), "r": r, "p": p, "p_perm": min(1.0, p * 1.1),
                    "ci_low": r - 0.3, "ci_high": min(1.0, r + 0.3), "method": method})
    write_table(group / "correlations.tsv", pd.DataFrame(cor))
    write_table(group / "exclusions.tsv", pd.DataFrame({
        "participant_id": ["sub-06"], "contrast": ["all"], "reason": ["no PET scans found"]}))
    _maps(group)
    write_json(group / "bp_nd.json", {"GeneratedBy": [{"Name": "petbp"}]})
    config = {"bids_dir": str(bids), "output_dir": str(out), "reference_region": "occipital",
              "weights": "duration", "models": {"srtm": {"window": "per condition"},
                                                "logan_ref": {"t_star": 20}},
              "contrasts": CONTRASTS}
    return out, config


@pytest.fixture(scope="session")
def synthetic_results(tmp_path_factory) -> tuple[Path, dict]:
    """(output_dir, config) of the synthetic study, written once per test session."""
    return make_results(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def synthetic_report(synthetic_results) -> tuple[Path, Path, dict]:
    """(report.html, output_dir, config), built once per test session."""
    from pipeline.report import write_report

    out, config = synthetic_results
    html = write_report(out, config, out / "report.html", methods_md=out / "methods.md")
    return html, out, config
