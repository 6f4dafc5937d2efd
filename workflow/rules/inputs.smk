# The scan table, wildcard constraints, every input function and the helpers rules use
# (out, log_to, res). Rules only call these names; anything numeric is in `pipeline`.

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from pathlib import Path

import yaml

from pipeline import bids
from pipeline.design import (
    k2prime_settings,
    load_design,
    model_options,
    needs_k2prime,
    region_models,
    scan_conditions,
)
from pipeline.regions import load_region_config

OUT = Path(config["output_dir"])
DEMO = config["bids_dir"] == "demo"
BIDS_DIR = OUT / "demo" / "bids" if DEMO else Path(config["bids_dir"])
DESIGN = load_design(config)
MODELS = region_models(config)
PRIMARY = MODELS[0]
REGION_SET = load_region_config(config["regions"])
REFERENCE = REGION_SET.reference
VOXELWISE = config["voxelwise"]
VOX_MODEL = VOXELWISE["model"]
# Region masks are built once per PET grid and reused by every job (pipeline.regions cache).
os.environ.setdefault("PETBP_REGION_CACHE", str(OUT / "cache" / "masks"))
RESOURCES = yaml.safe_load(Path(workflow.basedir, "workflow", "resources.yaml").read_text())

# Scan keys are "<rel_dir>/<stem>", e.g. sub-01/pet/sub-01_task-rejection.
wildcard_constraints:
    scan=r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?pet/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    sub=r"[A-Za-z0-9]+",
    model=r"[a-z0-9_]+",
    cond=r"[A-Za-z0-9]+",
    contrast=r"[A-Za-z0-9]+",
    score=r"[A-Za-z0-9_]+",


# out() runs tens of thousands of times while the DAG is built: a plain relative path
# ("a/b/c", no empty, "." or ".." parts) is joined as text, which is what pathlib gives.
_OUT_PREFIX = {".": "", "/": "/", "//": "//"}.get(str(OUT), str(OUT) + "/")
_PLAIN = re.compile(r"[^/.][^/]*(/[^/.][^/]*)*")


def out(path):
    """A path under output_dir."""
    if isinstance(path, str) and _PLAIN.fullmatch(path):
        return _OUT_PREFIX + path
    return str(OUT / path)


def res(rule_name):
    """threads, mem_mb and runtime (minutes) of a rule from workflow/resources.yaml."""
    entry = dict(RESOURCES.get("default", {}))
    entry.update(RESOURCES.get(rule_name, {}))
    return entry


class _ThisThread(logging.Filter):
    """Pass only records of the thread that created the filter (jobs may run in threads)."""

    def __init__(self):
        super().__init__()
        self.ident = threading.get_ident()

    def filter(self, record):
        return record.thread == self.ident


logging.captureWarnings(True)
logging.getLogger().setLevel(logging.INFO)


@contextlib.contextmanager
def log_to(path):
    """Send the logging records and warnings of a rule's step (this thread only) and any
    traceback to its log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as stream:
        handler = logging.StreamHandler(stream)
        handler.addFilter(_ThisThread())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield
        except Exception:
            stream.write(traceback.format_exc())
            raise
        finally:
            root.removeHandler(handler)


_SCANS = {}
# Built once from _SCANS (which is filled once): key -> condition names, sub -> keys.
_CONDITIONS = {}
_BY_SUBJECT = {}
_CONTRAST_MAPS = {}


def _discover():
    scans = bids.discover_scans(BIDS_DIR, **config["selection"])
    used = {}
    for scan in scans:
        if scan_conditions(config, scan):
            used[f"{scan.rel_dir}/{scan.stem}"] = scan
        else:
            print(f"petbp: {scan.stem} (task {scan.task}) is in no condition of the design; "
                  "not analysed", file=sys.stderr)
    return used


if not DEMO:
    # Parse-time checks, as in `petbp check`: a bad sidecar stops the run before any job.
    _SCANS.update(_discover())
    if not _SCANS:
        raise ValueError(
            f"{BIDS_DIR}: no scan belongs to a condition of the design (tasks "
            f"{', '.join(DESIGN.tasks)}).\n  Set design.conditions to your tasks "
            "(config/README.md, 'Which design you have').")


def scans():
    """Analysed scans, key -> Scan (the demo is simulated first, by a checkpoint)."""
    if not _SCANS:
        if DEMO:
            checkpoints.simulate_demo.get()
        _SCANS.update(_discover())
    return _SCANS


def scan_of(wildcards):
    return scans()[wildcards.scan]


def pet_of(wildcards):
    return str(scan_of(wildcards).image_path)


def first_pet(wildcards):
    """One scan's image: the grid for the partial-volume mixing of the drift simulation."""
    return str(scans()[sorted(scans())[0]].image_path)


def tacs_path(key):
    return out(f"{key}_desc-{REGION_SET.name}_tacs.tsv")


def tacs_of(wildcards):
    return tacs_path(wildcards.scan)


def _conditions_of(key):
    """Condition names of a scan (computed once per scan)."""
    names = _CONDITIONS.get(key)
    if names is None:
        names = _CONDITIONS[key] = scan_conditions(config, scans()[key])
    return names


def conditions_of_scan(key):
    """(name, window) of every condition a scan holds."""
    return [(c, DESIGN.conditions[c].window) for c in _conditions_of(key)]


def entities_of(wildcards):
    s = scan_of(wildcards)
    return {"participant_id": s.participant_id, "session": s.ses, "task": s.task, "run": s.run}


def k2prime_path(sub):
    return out(f"sub-{sub}/sub-{sub}_k2prime.json")


def k2prime_needed(options):
    return needs_k2prime(options)


def k2prime_of_scan(model, options=None):
    """Input function: the subject's k2' JSON when the model uses the shared k2'."""
    def inner(wildcards):
        opts = options if options is not None else model_options(config, wildcards.model)
        return [k2prime_path(scan_of(wildcards).sub)] if needs_k2prime(opts) else []
    return inner


def subject_tacs(wildcards):
    if not _BY_SUBJECT:
        # one pass over the scans (in scan order), not one per subject
        for k, s in scans().items():
            _BY_SUBJECT.setdefault(s.sub, []).append(k)
    return [tacs_path(k) for k in _BY_SUBJECT.get(wildcards.sub, [])]


def fit_path(key, model):
    return out(f"{key}_model-{model}_bp.tsv")


def all_fits(wildcards):
    return [fit_path(k, m) for k in scans() for m in MODELS]


def all_tacs(wildcards):
    return [tacs_path(k) for k in scans()]


def participants_tsv(wildcards=None):
    if DEMO:
        checkpoints.simulate_demo.get()
    return str(BIDS_DIR / "participants.tsv")


def read_participants_table():
    return bids.read_participants(BIDS_DIR)


def map_prefix(key, model, cond):
    return out(f"{key}_model-{model}_cond-{cond}")


def mask_path(key):
    return out(f"{key}_desc-analysis_mask.nii.gz")


def window_of(wildcards):
    return DESIGN.conditions[wildcards.cond].window


def contrast_maps(wildcards):
    """(participant_id, condition) -> BP_ND map for the conditions of one contrast."""
    cached = _CONTRAST_MAPS.get(wildcards.contrast)
    if cached is None:
        needed = set(DESIGN.conditions_of(wildcards.contrast))
        cached = {}
        for key, scan in sorted(scans().items()):
            for cond in _conditions_of(key):
                if cond in needed:
                    # several runs/sessions of one condition: all listed; the voxelwise step
                    # averages them (logged, and listed in the sidecars' runs_averaged)
                    cached.setdefault((scan.participant_id, cond), []).append(
                        map_prefix(key, VOX_MODEL, cond) + "_bpnd.nii.gz")
        _CONTRAST_MAPS[wildcards.contrast] = cached
    # a fresh copy each call, as before (callers may change what they get)
    return {pair: list(files) for pair, files in cached.items()}


def contrast_map_files(wildcards):
    return sorted(f for files in contrast_maps(wildcards).values() for f in files)


def voxelwise_outputs(contrast, model=VOX_MODEL):
    base = out(f"group/{contrast}_model-{model}")
    return {"effects": f"{base}_effects.nii.gz", "tmap": f"{base}_tmap.nii.gz",
            "fwe": f"{base}_fwep.nii.gz", "clusters": f"{base}_clusters.tsv"}


def voxelwise_report_outputs(contrast, model):
    """voxelwise_outputs with the cluster table filed in the Snakemake report."""
    files = voxelwise_outputs(contrast, model)
    files["clusters"] = report(files["clusters"], caption="../report/voxelwise.rst",
                               category="Voxelwise", labels={"contrast": contrast,
                                                             "model": model})
    return files


def correlation_outputs(contrast, score, model=VOX_MODEL):
    base = out(f"group/{contrast}_score-{score}_model-{model}")
    return {"tmap": f"{base}_tmap.nii.gz", "rmap": f"{base}_rmap.nii.gz",
            "fwe": f"{base}_fwep.nii.gz", "clusters": f"{base}_clusters.tsv"}


def voxelwise_scores():
    """(contrast, score) pairs of the configured correlations (voxelwise maps)."""
    pairs = []
    for spec in config["statistics"]["correlations"]:
        pair = (spec["contrast"], spec["score"])
        if pair not in pairs and spec["contrast"] in DESIGN.contrasts:
            pairs.append(pair)
    return pairs


def group_outputs(wildcards=None):
    """Every group-level output except the report (also the report rule's input)."""
    files = [out(f"group/{name}.tsv") for name in
             ("bp_nd", "contrasts", "contrast_values", "exclusions", "correlations",
              "null_drift")]
    if VOXELWISE["enabled"]:
        for contrast in DESIGN.contrasts:
            files += list(voxelwise_outputs(contrast).values())
        for contrast, score in voxelwise_scores():
            files += list(correlation_outputs(contrast, score).values())
    return files + group_comparison_outputs()  # workflow/rules/groups.smk


def final_outputs(wildcards=None):
    files = group_outputs()
    if hasattr(rules, "report"):
        files.append(out("report.html"))
    return files
