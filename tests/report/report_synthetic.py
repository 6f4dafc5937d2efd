"""A small seeded results directory in the shape the workflow writes
(docs/architecture.md, "File contracts").

Per-scan files are written directly with known values; the group tables come from the
workflow's own ``write_*`` steps (:mod:`pipeline.stats.tables`) on them, so the report is
tested on real column sets. 6 participants (sub-06 has no scans: excluded), 5 with a
task-rejection and a task-acceptance scan, baseline (5-45 min) and condition (45-90 min)
windows, 4 target regions plus the occipital reference, two models (primary
``logan_ref``), a t map and an FWE map in MNI space and a cluster table. One scan has a
frame where every region is 30 % high (motion-like), one fit is flagged ``at_bound``, and
sub-05 has no ``_fits.tsv`` (the report says its fitted curves are missing).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.config import validate_config
from pipeline.tables import write_table

REGIONS = ["amygdala_l", "amygdala_r", "thalamus_l", "caudate_l"]
TRUE_BP = {"amygdala_l": 1.8, "amygdala_r": 1.8, "thalamus_l": 2.7, "caudate_l": 1.7}
DURATIONS_S = [60] * 5 + [120] * 5 + [300] * 5 + [600] * 5  # 20 frames, 90 min
OUTLIER_SCAN = "sub-03_task-rejection"
OUTLIER_FRAME = 12
BOUND_SCAN = "sub-02_task-acceptance"
NO_CURVES_SUBJECT = "05"
CONDITIONS = {"rejbase": {"task": "rejection", "window": [5, 45]},
              "rejection": {"task": "rejection", "window": [45, 90]},
              "accbase": {"task": "acceptance", "window": [5, 45]},
              "acceptance": {"task": "acceptance", "window": [45, 90]}}
CONTRASTS = {"rejection": {"baseline": "rejbase", "condition": "rejection"},
             "acceptance": {"baseline": "accbase", "condition": "acceptance"},
             "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                          "control": "acceptance"}}
MODELS = {"logan_ref": {"t_star": 10}, "srtm": {}}


def _frames() -> tuple[np.ndarray, np.ndarray]:
    end = np.cumsum(DURATIONS_S).astype(float)
    return end - np.asarray(DURATIONS_S, float), end


def _curves(bp: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth reference TAC and a target approaching (1 + bp) x reference (Bq/mL)."""
    ref = 20000.0 * (1 - np.exp(-t / 3.0)) * np.exp(-t / 80.0) + 3000.0
    return ref, ref * (1 + bp * (1 - np.exp(-t / 15.0)))


def _overlay(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.imshow(np.arange(12).reshape(3, 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _scan(out: Path, sub: str, task: str, rng: np.random.Generator,
          release: dict[str, float]) -> list[pd.DataFrame]:
    stem = f"sub-{sub}_task-{task}"
    pet = out / f"sub-{sub}" / "pet"
    start, end = _frames()
    mid = (start + end) / 120.0
    columns = {"frame_start": start, "frame_end": end}
    fit_rows, bp_rows = [], []
    ref = None
    late = mid >= 45
    conditions = {c: v["window"] for c, v in CONDITIONS.items() if v["task"] == task}
    for region in REGIONS:
        base_bp = TRUE_BP[region] * rng.uniform(0.9, 1.1)
        ref, target = _curves(base_bp, mid)
        target = target * np.where(late, 1 - release.get(region, 0.0) * 0.5, 1.0)
        measured = target * (1 + 0.02 * rng.standard_normal(mid.size))
        if stem == OUTLIER_SCAN:
            measured[OUTLIER_FRAME] *= 1.30
        columns[region] = measured
        for condition, window in conditions.items():
            used = (mid >= window[0]) & (mid < window[1])
            fit_rows.append(pd.DataFrame({
                "frame_start": start, "frame_end": end, "region": region,
                "condition": condition, "measured": measured,
                "fitted": np.where(used, target, np.nan), "used": used}))
            bp = base_bp * (1 - release.get(region, 0.0)) if late[used].all() else base_bp
            flags = "at_bound" if (stem == BOUND_SCAN and region == "caudate_l"
                                   and condition == "acceptance") else ""
            bp_rows.append({"participant_id": f"sub-{sub}", "session": np.nan, "task": task,
                            "run": np.nan, "condition": condition,
                            "window_start": float(window[0]), "window_end": float(window[1]),
                            "region": region, "bp_nd": bp, "r1": np.nan, "k2": np.nan,
                            "k2prime": 0.1, "n_voxels": 250.0, "se_bp_nd": 0.05,
                            "n_frames": int(used.sum()), "flags": flags})
    columns["occipital"] = ref
    if sub == "01" and task == "rejection":  # a region-overlay image, as the workflow draws
        _overlay(pet / f"{stem}_desc-default_regions.png")
    write_table(pet / f"{stem}_desc-default_tacs.tsv", pd.DataFrame(columns),
                {"TracerName": "carfentanil", "TracerRadionuclide": "C11",
                 "regions": {r: {"n_voxels": 250} for r in [*REGIONS, "occipital"]}})
    tables = []
    for k, (model, options) in enumerate(MODELS.items()):
        table = pd.DataFrame(bp_rows)
        table.insert(table.columns.get_loc("region") + 1, "model", model)
        table["bp_nd"] *= 1.0 - 0.05 * k  # the second model reads 5 % lower
        path = pet / paths.FIT.format(scan=stem, model=paths.model_label(model))
        write_table(path, table, {"model": model, "options": options,
                                  "reference_region": "occipital", "conditions": conditions,
                                  "k2prime": 0.1})
        if sub != NO_CURVES_SUBJECT:
            write_table(pet / paths.FIT_CURVES.format(scan=stem, model=paths.model_label(model)),
                        pd.concat(fit_rows))
        tables.append(table)
    return tables


def _maps(group: Path) -> None:
    affine = np.array([[4.0, 0, 0, -90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])
    ijk = np.indices((46, 55, 46)).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    blob = 5.0 * np.exp(-np.sum((xyz - [-22, -4, -18]) ** 2, axis=1) / (2 * 8.0**2))
    tmap = blob.reshape(46, 55, 46).astype(np.float32)
    nib.save(nib.Nifti1Image(tmap, affine), group / "rejection_model-loganref_tmap.nii.gz")
    logp = np.where(tmap > 3.0, 2.0, 0.0).astype(np.float32)
    nib.save(nib.Nifti1Image(logp, affine), group / "rejection_model-loganref_fwep.nii.gz")
    write_table(group / "rejection_model-loganref_clusters.tsv", pd.DataFrame({
        "cluster_id": [1], "peak_x": [-22.0], "peak_y": [-4.0], "peak_z": [-18.0],
        "peak_t": [5.0], "size_ml": [1.9], "region": ["amygdala_l"]}))


def make_results(root: Path, seed: int = 7) -> tuple[Path, dict]:
    """Write the synthetic study under ``root``; returns (output_dir, config)."""
    from pipeline.stats.tables import write_contrasts, write_correlations

    rng = np.random.default_rng(seed)
    out, bids = root / "results", root / "bids"
    bids.mkdir(parents=True)
    subjects = [f"{i:02d}" for i in range(1, 7)]
    resilience = rng.uniform(20, 50, len(subjects)).round(0)
    participants = pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects],
                                 "resilience": resilience, "age": rng.integers(20, 40, 6),
                                 "sex": rng.integers(0, 2, 6)})
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    tables = []
    for s, score in zip(subjects[:-1], resilience[:-1], strict=True):  # sub-06 has no scans
        amyg = 0.02 + 0.003 * (score - 35) + 0.01 * rng.standard_normal()
        tables += _scan(out, s, "rejection", rng, {"amygdala_l": amyg, "thalamus_l": 0.06})
        tables += _scan(out, s, "acceptance", rng, {"caudate_l": 0.04})
    group = out / "group"
    write_table(group / "bp_nd.tsv", pd.concat(tables, ignore_index=True),
                {"GeneratedBy": [{"Name": "petbp"}]})
    config = {"bids_dir": str(bids), "output_dir": str(out), "models": MODELS,
              "primary_model": "logan_ref",
              "design": {"conditions": CONDITIONS, "contrasts": CONTRASTS},
              "statistics": {"test": "ttest", "alpha": 0.05, "null_drift": {"method": "none"},
                             "correlations": [
                                 {"contrast": "rejection", "region": "amygdala_l",
                                  "score": "resilience"},
                                 {"contrast": "rejection", "region": "amygdala_l",
                                  "score": "resilience", "covariates": ["age", "sex"]}],
                             "n_boot": 200, "n_perm": 200},
              "voxelwise": {"model": "logan_ref", "n_perm": 100}}
    validate_config(config)  # defaults filled, as the workflow holds it
    write_contrasts(group / "bp_nd.tsv", group / "contrasts.tsv", group / "contrast_values.tsv",
                    group / "exclusions.tsv", design=config["design"],
                    test=config["statistics"]["test"], alpha=config["statistics"]["alpha"],
                    drift_method="none", participants=participants)
    write_correlations(group / "contrast_values.tsv", participants, group / "correlations.tsv",
                       specs=config["statistics"]["correlations"], model="logan_ref",
                       n_boot=200, n_perm=200)
    _maps(group)
    return out, config
