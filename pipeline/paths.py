"""Every output path of the workflow, written once: used by the rules, their input
functions, ``petbp report`` and the tests.

``output_dir`` is a BIDS-derivatives dataset (BIDS 1.9, PET derivatives draft BEP023):
``dataset_description.json`` at the top, per-scan files under ``sub-<l>/[ses-<s>/]pet/``
named ``<scan stem>_<entity>-<label>..._<suffix>.<ext>`` with alphanumeric labels, the group
tables under ``group/`` and the report at the top. Working files that are not results
(region-mask caches, rule logs, the demo's simulated input dataset and its truth) live under
``.petbp/``, which BIDS readers skip like any dot-folder.

Templates are ``str.format`` patterns whose fields are Snakemake wildcards. ``{scan}`` is a
scan key, ``<rel_dir>/<stem>`` (``sub-01/pet/sub-01_task-rejection``); ``{model}`` is a model
*label* (:func:`model_label`: ``logan_ref`` -> ``loganref``), since BIDS entity labels are
letters and digits only. Tables keep the model *names* of the config in their ``model``
column.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "CONFOUNDS",
    "COREGISTRATION",
    "CORRELATION_MAPS",
    "DATASET_DESCRIPTION",
    "DEMO_BIDS",
    "DEMO_DIR",
    "FIT",
    "FIT_CURVES",
    "GROUP_TABLES",
    "HMC_MEAN",
    "K2PRIME",
    "LOGS",
    "MAP",
    "MASK",
    "MASK_CACHE",
    "MOTION_QC",
    "NORMALIZATION",
    "PET_CACHE",
    "PET_MNI",
    "REGION_QC",
    "REGISTRATION_QC",
    "REPORT",
    "SEGMENTATION",
    "TACS",
    "VOXELWISE_MAPS",
    "WORK_DIR",
    "anat_key",
    "group_table",
    "model_label",
    "model_name",
    "parse_scan_file",
]

# ---- working files (not results) ---------------------------------------------------------
#: Folder of working files under output_dir (skipped by BIDS readers: it starts with a dot).
WORK_DIR = ".petbp"
#: Rule logs: ``.petbp/logs/<output path without extension>_<rule>.log``.
LOGS = f"{WORK_DIR}/logs"
#: Region masks per PET grid, reused by every job (:mod:`pipeline.regions.masks`).
MASK_CACHE = f"{WORK_DIR}/cache/masks"
#: Loaded scans (float32 .npy) that a scan's TAC step leaves for its maps and region figure
#: (:mod:`pipeline.bids.image_cache`); deleted when a run succeeds.
PET_CACHE = f"{WORK_DIR}/cache/pet"
#: The built-in demo study: ``bids/`` (the simulated input dataset) and ``truth/``.
DEMO_DIR = f"{WORK_DIR}/demo"
DEMO_BIDS = f"{DEMO_DIR}/bids"

# ---- the derivatives dataset -------------------------------------------------------------
DATASET_DESCRIPTION = "dataset_description.json"
REPORT = "report.html"

#: Regional time-activity curves of one scan (``regionset``: the region config's name).
TACS = "{scan}_desc-{regionset}_tacs.tsv"
#: Region fits of one scan and model, every condition window.
FIT = "{scan}_model-{model}_bp.tsv"
#: Measured and fitted curves beside a region fit (written by some fit steps).
FIT_CURVES = "{scan}_model-{model}_fits.tsv"
#: The voxels analysed on one scan's grid.
MASK = "{scan}_desc-analysis_mask.nii.gz"
#: Parametric BP_ND map of one scan, model and condition window.
MAP = "{scan}_model-{model}_cond-{cond}_bpnd.nii.gz"
#: Region overlay on one scan (QC figure).
REGION_QC = "{scan}_desc-{regionset}_regions.png"
#: The subject's shared k2' (reference efflux, 1/min), beside each of its scans: every scan's
#: fit job estimates it from all the subject's TACs (the same value for each scan).
K2PRIME = "{scan}_k2prime.json"

# ---- preprocessing of scanner-space scans (pipeline.preprocess) --------------------------
#: Head-motion confounds (one row per frame; the JSON holds the per-frame transforms).
CONFOUNDS = "{scan}_desc-confounds_timeseries.tsv"
#: Mean of the motion-corrected reference frames (the image coregistered to the T1w).
HMC_MEAN = "{scan}_desc-hmcmean_pet.nii.gz"
#: Rigid PET -> T1w coregistration (JSON; an ANTs .mat beside it).
COREGISTRATION = "{scan}_from-pet_to-T1w_xfm.json"
#: The scan on the MNI grid, motion corrected, motion-outlier frames left out (its JSON
#: sidecar gives the frames kept), for voxelwise analysis.
PET_MNI = "{scan}_space-MNI152NLin2009aSym_desc-preproc_pet.nii.gz"
#: Motion traces and framewise displacement of one scan (QC figure).
MOTION_QC = "{scan}_desc-motion_qc.png"
#: PET on its T1w and the T1w on the template (QC figure).
REGISTRATION_QC = "{scan}_desc-registration_qc.png"
#: Per T1w image (``{anat}`` = ``sub-<l>/[ses-<s>/]anat/<T1w stem without _T1w>``): the
#: normalization to MNI152 (ANTs files, coordinate fields, the T1w on the template) and
#: tissue fractions.
NORMALIZATION = {
    "xfm": "{anat}_from-T1w_to-MNI152NLin2009aSym_xfm.json",
    "affine": "{anat}_from-T1w_to-MNI152NLin2009aSym_affine.mat",
    "warp": "{anat}_from-T1w_to-MNI152NLin2009aSym_warp.nii.gz",
    "inverse_warp": "{anat}_from-T1w_to-MNI152NLin2009aSym_inversewarp.nii.gz",
    "mnicoords": "{anat}_desc-mnicoords_field.nii.gz",
    "t1coords": "{anat}_desc-t1coords_field.nii.gz",
    "t1_mni": "{anat}_space-MNI152NLin2009aSym_T1w.nii.gz",
}
SEGMENTATION = {
    "gm": "{anat}_label-GM_probseg.nii.gz",
    "wm": "{anat}_label-WM_probseg.nii.gz",
    "csf": "{anat}_label-CSF_probseg.nii.gz",
    "brain": "{anat}_desc-brain_mask.nii.gz",
}

#: Group tables, by name (each with a JSON sidecar).
GROUP_TABLES = ("bp_nd", "contrasts", "contrast_values", "exclusions", "correlations",
                "null_drift", "rating_changes", "rating_tests", "group_differences")
#: Voxelwise group maps of one contrast and model, by kind.
VOXELWISE_MAPS = {
    "effects": "group/{contrast}_model-{model}_effects.nii.gz",
    "tmap": "group/{contrast}_model-{model}_tmap.nii.gz",
    "fwe": "group/{contrast}_model-{model}_fwep.nii.gz",
    "clusters": "group/{contrast}_model-{model}_clusters.tsv",
}
#: Voxelwise correlation maps of one contrast, score and model, by kind.
CORRELATION_MAPS = {
    "tmap": "group/{contrast}_score-{score}_model-{model}_tmap.nii.gz",
    "rmap": "group/{contrast}_score-{score}_model-{model}_rmap.nii.gz",
    "fwe": "group/{contrast}_score-{score}_model-{model}_fwep.nii.gz",
    "clusters": "group/{contrast}_score-{score}_model-{model}_clusters.tsv",
}

def group_table(name: str) -> str:
    """``group/<name>.tsv``, one of :data:`GROUP_TABLES`.

    Parameters
    ----------
    name : str
        One of :data:`GROUP_TABLES`.
    """
    if name not in GROUP_TABLES:
        raise KeyError(f"{name!r} is not a group table ({', '.join(GROUP_TABLES)})")
    return f"group/{name}.tsv"


def anat_key(t1w_path: str, bids_dir: str) -> str:
    """The ``{anat}`` key of a T1w image: its path under the dataset without ``_T1w.nii[.gz]``
    (``sub-01/anat/sub-01``, ``sub-01/ses-1/anat/sub-01_ses-1_acq-mp2rage``).

    Parameters
    ----------
    t1w_path : str
        The T1w image, inside ``bids_dir``.
    bids_dir : str
        The BIDS dataset.
    """
    from pathlib import Path

    rel = Path(t1w_path).resolve().relative_to(Path(bids_dir).resolve()).as_posix()
    for suffix in ("_T1w.nii.gz", "_T1w.nii"):
        if rel.endswith(suffix):
            return rel[: -len(suffix)]
    raise ValueError(f"{t1w_path} is not a *_T1w.nii[.gz] image")


@functools.cache
def model_label(model: str) -> str:
    """The file-name label of a model name: letters and digits only (``logan_ref`` ->
    ``loganref``, ``srtm_bf`` -> ``srtmbf``).

    Parameters
    ----------
    model : str
        A model name.
    """
    return re.sub(r"[^A-Za-z0-9]", "", model)


def model_name(label: str, names: list[str] | tuple[str, ...] | None = None) -> str:
    """The model name of a file-name label, among ``names`` (default: every known model).

    A label that is no model's is returned unchanged.

    Parameters
    ----------
    label : str
        A file-name label.
    names : list or tuple of str, default=None
        Candidate model names; None means every model of the registry.
    """
    if names is None:
        from pipeline.kinetics import MODELS

        names = list(MODELS)
    for name in names:
        if model_label(name) == label:
            return name
    return label


_STEM = r"sub-[A-Za-z0-9]+(?:_ses-[A-Za-z0-9]+)?(?:_task-[A-Za-z0-9]+)?" \
        r"(?:_trc-[A-Za-z0-9]+)?(?:_rec-[A-Za-z0-9]+)?(?:_run-[A-Za-z0-9]+)?"


def _name_pattern(template: str) -> re.Pattern:
    """A regex of a per-scan template's file name (``{scan}`` -> the stem)."""
    name = template.split("{scan}", 1)[1]
    parts = re.split(r"\{(\w+)\}", name)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[A-Za-z0-9]+)"
                    for i, p in enumerate(parts))
    return re.compile(f"(?P<stem>{_STEM}){regex}$")


#: Per-scan file kinds, most specific first (a map name also matches no table pattern).
_SCAN_FILES = {kind: _name_pattern(template) for kind, template in (
    ("map", MAP), ("bp", FIT), ("fits", FIT_CURVES), ("tacs", TACS), ("mask", MASK),
    ("region_qc", REGION_QC), ("confounds", CONFOUNDS), ("motion_qc", MOTION_QC),
    ("registration_qc", REGISTRATION_QC))}


def parse_scan_file(name: str) -> tuple[str, dict[str, str]] | None:
    """Which per-scan output a file name is: ``(kind, fields)`` or None.

    ``kind`` is ``map``, ``bp``, ``fits``, ``tacs``, ``mask``, ``region_qc``, ``confounds``,
    ``motion_qc`` or ``registration_qc``; ``fields``
    holds ``stem`` and the template's other fields (``model`` is the label).

    Parameters
    ----------
    name : str
        A file name (no folder).

    Examples
    --------
    >>> parse_scan_file("sub-01_task-rej_model-loganref_bp.tsv")
    ('bp', {'stem': 'sub-01_task-rej', 'model': 'loganref'})
    """
    for kind, pattern in _SCAN_FILES.items():
        match = pattern.match(name)
        if match:
            return kind, match.groupdict()
    return None
