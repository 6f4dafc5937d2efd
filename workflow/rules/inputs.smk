# The scan table, wildcard constraints, the per-scan input functions and the helpers every
# step uses (out, log_path, log_to, res, used); group_inputs.smk holds the group-level ones.
# Steps only call these names; anything numeric is in `pipeline`. Paths come from
# pipeline.paths (written once, shared with the report). docs/architecture.md: the layout.
#
# Every config value a step reads reaches it through `params: used=used(...)` (a dict of
# dotted config keys -> values): Snakemake's params trigger reruns the step when one of them
# is edited, and record_config_used() writes them into the outputs' sidecars (ConfigUsed),
# which the report compares with the config it prints. Run blocks never read `config`.

import contextlib
import inspect
import logging
import os
import re
import sys
import threading
import traceback
from pathlib import Path

import yaml

from pipeline import bids, paths
from pipeline.bids.preprocessed import check_preproc_location
from pipeline.config import config_values
from pipeline.errors import InputError
from pipeline.design import load_design, model_options, needs_k2prime, region_models
from pipeline.design import scan_conditions
from pipeline.preprocess.confounds import scan_exclusion, thresholds_from_config
from pipeline.preprocess.plan import cached_image_spaces, plan_scan
from pipeline.regions import load_region_config
from pipeline.scan_keys import condition_sets

OUT = Path(config["output_dir"])
DEMO = config["bids_dir"] == "demo"
BIDS_DIR = OUT / paths.DEMO_BIDS if DEMO else Path(config["bids_dir"])
PREPROC_DIR = Path(config["preproc_dir"]) if config.get("preproc_dir") else None
if PREPROC_DIR is not None:
    check_preproc_location(PREPROC_DIR, OUT)  # before anything is written
DESIGN = load_design(config)
MODELS = region_models(config)
PRIMARY = MODELS[0]
REGION_SET = load_region_config(config["regions"])
REFERENCE = REGION_SET.reference
VOXELWISE = config["voxelwise"]
VOX_MODEL = VOXELWISE["model"]
# Region masks are built once per PET grid and reused by every job (pipeline.regions cache).
os.environ.setdefault("PETBP_REGION_CACHE", str(OUT / paths.MASK_CACHE))
#: Space-detection evidence per raw image (ScanTable._plan), in the working directory.
SPACE_CACHE = Path(".snakemake", "petbp", "space")
#: Scans read at an earlier parse, reused while their image and sidecars are unchanged
#: (pipeline.bids.scan_cache: sidecars compared by content), in the working directory.
SCAN_CACHE = Path(".snakemake", "petbp", "scans")
RESOURCES = yaml.safe_load(Path(workflow.basedir, "workflow", "resources.yaml").read_text())


def label(model):
    """A model's file-name label (letters and digits: logan_ref -> loganref)."""
    return paths.model_label(model)


#: {model} label -> model name of the region models and the voxelwise model.
MODEL_OF_LABEL = {label(m): m for m in [*MODELS, VOX_MODEL]}


def model_of(wildcards):
    """The model name of a job's {model} label."""
    return MODEL_OF_LABEL.get(wildcards.model, wildcards.model)


# Scan keys are "<rel_dir>/<stem>", e.g. sub-01/pet/sub-01_task-rejection.
SCAN_KEY = r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?pet/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*"


wildcard_constraints:
    scan=SCAN_KEY,
    sub=r"[A-Za-z0-9]+",
    model=r"[A-Za-z0-9]+",
    cond=r"[A-Za-z0-9]+",
    contrast=r"[A-Za-z0-9]+",
    score=r"[A-Za-z0-9_]+",
    anat=r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?anat/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",


# out() runs tens of thousands of times while the DAG is built: a plain relative path
# ("a/b/c", no empty, "." or ".." parts) is joined as text, which is what pathlib gives.
_OUT_PREFIX = "" if str(OUT) == "." else os.path.join(str(OUT), "")
_PLAIN = re.compile(r"[^/.][^/]*(/[^/.][^/]*)*")


def out(path):
    """A path under output_dir."""
    if isinstance(path, str) and _PLAIN.fullmatch(path):
        return _OUT_PREFIX + path
    return str(OUT / path)


def log_path(name):
    """A rule's log file under output_dir/.petbp/logs (out of a BIDS reader's way)."""
    return str(OUT / paths.LOGS / name)


def res(rule_name):
    """threads, mem_mb and runtime (minutes) of a rule from workflow/resources.yaml."""
    entry = dict(RESOURCES.get("default", {}))
    entry.update(RESOURCES.get(rule_name, {}))
    return entry


def used(*keys):
    """{dotted config key: value} of the config values a step reads: its params."""
    return config_values(config, keys)


def scan_template(template, **fields):
    """A per-scan path of pipeline.paths under output_dir, the region set filled in."""
    return out(template.format(regionset=REGION_SET.name, **fields))


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


class ScanTable:
    """The analysed scans, built once: key -> Scan, its conditions, its image and sidecar,
    keys per subject, and which scans are preprocessed (scanner space) with their T1w.
    Input functions only look things up here (they run once per job)."""

    def __init__(self, found, plans=True):
        self.scan = {}
        self.conditions = {}
        self.images = {}
        self.raw = {}
        self.by_subject = {}
        self.t1w = {}  # preprocessed scan key -> its T1w image
        self.anat = {}  # {anat} key -> T1w image
        problems = []
        for scan in found:
            names = scan_conditions(config, scan)
            if not names:
                print(f"petbp: {scan.stem} (task {scan.task}) is in no condition of the "
                      "design; not analysed", file=sys.stderr)
                continue
            key = f"{scan.rel_dir}/{scan.stem}"
            self.scan[key] = scan
            self.conditions[key] = names
            self.raw[key] = {"pet": str(scan.image_path), "sidecar": str(scan.sidecar_path)}
            self.images[key] = self.raw[key]
            self.by_subject.setdefault(scan.sub, []).append(key)
        if plans:  # every image's space detected first, two at a time (a new study's first
            # parse decodes each image and leaves those analysed as is in the loaded-image
            # cache for extract_tacs), then the plans applied in scan order
            found_evidence = cached_image_spaces(
                list(self.scan.values()), SPACE_CACHE, loaded_cache=_parse_keeps_images())
            for key, evidence in zip(list(self.scan), found_evidence):
                try:
                    if isinstance(evidence, InputError):
                        raise evidence
                    self._plan(key, self.scan[key], evidence)
                except InputError as err:
                    problems.append(str(err))
        if problems:
            more = f"\n({len(problems)} scans refused)" if len(problems) > 1 else ""
            raise InputError("\n".join(problems[:5]) + more)

    def _plan(self, key, scan, evidence):
        """From the scan's space evidence, for a scan to preprocess, point its image at the
        MNI-space frames (pipeline.preprocess.plan). The evidence is kept in Snakemake's
        working directory (SPACE_CACHE), keyed by the image's path, size and modification
        time: a dry run may write there (never into output_dir), and a new output folder
        or a cluster job reuses it."""
        plan = plan_scan(scan.image_path, config["preprocessing"], evidence=evidence)
        if not plan.preprocess:
            return
        anat = paths.anat_key(str(plan.t1w), str(BIDS_DIR))
        self.t1w[key], self.anat[anat] = str(plan.t1w), str(plan.t1w)
        mni = scan_template(paths.PET_MNI, scan=key)
        self.images[key] = {"pet": mni, "sidecar": mni.removesuffix(".nii.gz") + ".json"}

    def __bool__(self):
        return bool(self.scan)

    def keys(self):
        return list(self.scan)


def _parse_keeps_images():
    """Where the parse stores the scans it decodes (pipeline.bids.image_cache), or None:
    with 'preprocessing: on' (no scan is analysed as is) and in a dry run (-n), which must
    not leave 101 MB per 2 mm scan behind; the workflow deletes the folder on success."""
    dry_run = any(arg in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg)
                  for arg in sys.argv[1:])
    return None if dry_run or config["preprocessing"] == "on" else OUT / paths.PET_CACHE


_TABLE = []


def _discover():
    # the demo is simulated in MNI space: no space detection
    return ScanTable(bids.discover_scans(BIDS_DIR, preproc_dir=PREPROC_DIR,
                                         cache_dir=SCAN_CACHE, **config["selection"]),
                     plans=not DEMO)


if not DEMO:
    # Parse-time checks, as in `petbp check`: a bad sidecar stops the run before any job.
    _TABLE.append(_discover())
    if not _TABLE[0]:
        raise ValueError(
            f"{BIDS_DIR}: no scan belongs to a condition of the design (tasks "
            f"{', '.join(DESIGN.tasks)}).\n  Set design.conditions to your tasks "
            "(config/README.md, 'Which design you have').")


def scan_table():
    """The ScanTable (the demo is simulated first, by a checkpoint)."""
    if not _TABLE:
        if DEMO:
            checkpoints.simulate_demo.get()
        _TABLE.append(_discover())
    return _TABLE[0]


def scans():
    """Analysed scans, key -> Scan."""
    return scan_table().scan


def scan_of(wildcards):
    return scans()[wildcards.scan]


def pet_of(wildcards):
    """The image a scan's steps read: the raw image, or the preprocessed one (preproc_dir).

    Steps that load the image are given the Scan itself (params.scan: a path to the image
    that carries its sidecar's facts, pipeline.bids.Scan), so a preprocessed image needs no
    sidecar of its own."""
    return scan_table().images[wildcards.scan]["pet"]


def raw_pet_of(wildcards):
    """The scan's own image (scanner space for a preprocessed scan)."""
    return scan_table().raw[wildcards.scan]["pet"]


def raw_sidecar_of(wildcards):
    return scan_table().raw[wildcards.scan]["sidecar"]


def t1w_of(wildcards):
    """The T1w a preprocessed scan is coregistered to."""
    return scan_table().t1w[wildcards.scan]


def t1w_of_anat(wildcards):
    """The T1w image of an {anat} key (normalization, segmentation)."""
    return scan_table().anat[wildcards.anat]


def anat_file(template, key):
    """A per-T1w output (pipeline.paths.NORMALIZATION / SEGMENTATION) of scan ``key``."""
    return out(template.format(anat=paths.anat_key(scan_table().t1w[key], str(BIDS_DIR))))


def normalization_of(kind):
    """Input function: the scan's T1w normalization file ``kind``."""
    return lambda wildcards: anat_file(paths.NORMALIZATION[kind], wildcards.scan)


def grey_matter_of(wildcards):
    return anat_file(paths.SEGMENTATION["gm"], wildcards.scan)


def scan_keys_pattern(keys):
    """A {scan} constraint matching exactly ``keys`` (never matching when empty)."""
    return "|".join(re.escape(k) for k in sorted(keys)) or r"(?!x)x"


def sidecar_of(wildcards):
    """The scan's nearest sidecar (frame times, units): an edit reruns what read it."""
    return scan_table().images[wildcards.scan]["sidecar"]


def preprocessed_keys():
    """Keys of the scans that are preprocessed (none in the demo, known at parse time)."""
    return [] if DEMO else list(scan_table().t1w)


def preprocess_qc_images(wildcards=None):
    """Motion and registration QC figures of every preprocessed scan (the report's)."""
    return [scan_template(t, scan=k) for k in preprocessed_keys()
            for t in (paths.MOTION_QC, paths.REGISTRATION_QC)]


#: {scan} constraints: scans analysed as is (their TACs from the image) and preprocessed
#: scans (TACs from regions brought into each frame). When no scan is preprocessed (the
#: demo, MNI-space and PETPrep-style studies) the first is any scan key: a list of every
#: key would be part of each TAC file's pattern, which Snakemake matches and fills in for
#: every job that names a TAC file (about 1 s of a 1,000-scan dry run, benchmarks/README.md
#: session 6); the second then matches nothing, so no TAC file has two producers.
AS_IS_SCANS = SCAN_KEY if not preprocessed_keys() else scan_keys_pattern(
    k for k in scan_table().scan if k not in scan_table().t1w)
PREPROCESSED_SCANS = scan_keys_pattern(preprocessed_keys())


#: The motion thresholds (config ``motion``): frames over ``fd_mm`` are left out of a scan's
#: TACs and MNI frames (those steps' params); a scan over the scan limits is excluded here,
#: when the DAG is built, so that it drops out of every analysis.
MOTION_KEYS = ("motion.fd_mm", "motion.max_displacement_mm", "motion.max_outlier_fraction")
MOTION_THRESHOLDS = None if DEMO else thresholds_from_config(used(*MOTION_KEYS))
_EXCLUSIONS = {}  # confounds path -> (mtime_ns, reasons)


def motion_exclusion(key):
    """Why scan ``key`` is excluded for head motion ([] when it is analysed).

    A preprocessed scan's motion correction is a checkpoint: until its confounds exist this
    raises Snakemake's IncompleteCheckpointException, so that every job whose inputs depend
    on the decision waits for it and is re-evaluated after it (the decision is made from the
    confounds and the configured thresholds, pipeline.preprocess.confounds.scan_exclusion,
    which the report also applies)."""
    if key not in scan_table().t1w:
        return []
    confounds = checkpoints.motion_correction.get(scan=key).output.confounds
    stamp = os.stat(confounds).st_mtime_ns
    known = _EXCLUSIONS.get(confounds)
    if known is None or known[0] != stamp:
        reasons = scan_exclusion(confounds, MOTION_THRESHOLDS, scan=Path(key).name)
        if reasons and (known is None or known[1] != reasons):
            print(f"petbp: {Path(key).name} is excluded for head motion ({'; '.join(reasons)}"
                  "); it is left out of every analysis (its motion QC is in the report)",
                  file=sys.stderr)
        known = _EXCLUSIONS[confounds] = (stamp, reasons)
    return known[1]


def analysed_keys(keys=None):
    """The scans (of ``keys``, default all) that reach the analyses: every scan but those
    excluded for head motion (motion_exclusion). One clear error when no scan is left."""
    every = keys is None
    keys = list(scans()) if every else keys
    kept = [k for k in keys if not motion_exclusion(k)]
    if every and not kept:
        raise InputError(
            "petbp: every scan is excluded for head motion under the configured thresholds "
            f"(motion.max_displacement_mm {MOTION_THRESHOLDS.max_displacement_mm:g} mm, "
            f"motion.max_outlier_fraction {MOTION_THRESHOLDS.max_outlier_fraction:g}): "
            "nothing is left to analyse.\n  Check the motion QC figures "
            "(<output_dir>/sub-*/pet/*_desc-motion_qc.png); if the correction looks right, "
            "raise the thresholds (config/README.md, 'Raw scanner-space data').")
    return kept


def excluded_scans(wildcards=None):
    """[{participant_id, session, task, run, reason}] of the scans excluded for head motion
    (a params value: the contrasts name the reason of a missing condition)."""
    rows = []
    for key, scan in scans().items():
        reasons = motion_exclusion(key)
        if reasons:
            rows.append({"participant_id": scan.participant_id, "session": scan.ses,
                         "task": scan.task, "run": scan.run,
                         "reason": "excluded for head motion: " + "; ".join(reasons)})
    return rows


def motion_confounds(wildcards=None):
    """Confounds of every preprocessed scan, once its motion correction (a checkpoint) is
    done: the input that makes a step wait for the exclusion decisions and be re-evaluated
    after them."""
    return [checkpoints.motion_correction.get(scan=k).output.confounds
            for k in preprocessed_keys()]


def tacs_path(key):
    return scan_template(paths.TACS, scan=key)


def tacs_of(wildcards):
    return tacs_path(wildcards.scan)


def conditions_of_scan(key):
    """(name, window) of every condition a scan holds."""
    return [(c, DESIGN.conditions[c].window) for c in scan_table().conditions[key]]


def condition_keys(key):
    """Config keys of the conditions a scan holds (design.conditions.<name>)."""
    return [f"design.conditions.{c}" for c in scan_table().conditions[key]]


def release_keys(key):
    """The release model's config keys for a scan whose condition windows follow one
    another (a within-scan design); none otherwise, so they rerun only what uses them."""
    from pipeline.kinetics.release import segment_boundaries

    if not segment_boundaries(conditions_of_scan(key)):
        return []
    return ["statistics.null_drift.method", "statistics.null_drift.fit_start",
            "statistics.null_drift.release_model", "statistics.null_drift.baseline_start"]


def release_settings(values):
    """The release model's keyword arguments of write_scan_fits (fit start None without a
    release model; minutes)."""
    if values.get("statistics.null_drift.method") != "release_model":
        return {"release_fit_start": None}
    return {"release_fit_start": values["statistics.null_drift.fit_start"],
            "release_model": values["statistics.null_drift.release_model"],
            "baseline_start": values["statistics.null_drift.baseline_start"]}


def entities_of(wildcards):
    s = scan_of(wildcards)
    return {"participant_id": s.participant_id, "session": s.ses, "task": s.task, "run": s.run}


def k2prime_path(key):
    """The subject's shared k2' as the fit job of scan ``key`` wrote it (kinetics.smk)."""
    return scan_template(paths.K2PRIME, scan=key)


#: Whether a region model (then each fit job estimates the subject's shared k2' and writes
#: it, kinetics.smk) or the voxelwise model (then each map job estimates it too) uses it.
FITS_NEED_K2PRIME = any(needs_k2prime(model_options(config, m)) for m in MODELS)
MAPS_NEED_K2PRIME = needs_k2prime(VOXELWISE["options"] or {})


def subject_tacs_of(wildcards):
    """TACs of the analysed scans of the scan's subject, in scan order: what its shared k2'
    is estimated from."""
    keys = scan_table().by_subject.get(scan_of(wildcards).sub, [])
    return [tacs_path(k) for k in analysed_keys(keys)]


def map_inputs(wildcards):
    """``unpack()`` for parametric maps: the scan's pet and sidecar, and k2prime_tacs (the
    subject's TACs when the voxelwise model uses the shared k2': the map job estimates it
    itself, as the fit jobs do, so that it neither waits for nor reruns after the fits)."""
    files = dict(scan_table().images[wildcards.scan])
    files["k2prime_tacs"] = subject_tacs_of(wildcards) if MAPS_NEED_K2PRIME else []
    return files


def fit_subject_tacs(wildcards):
    """The subject's TACs (subject_tacs_of) when a region model uses the shared k2', else
    none."""
    return subject_tacs_of(wildcards) if FITS_NEED_K2PRIME else []


def remember_signatures(rules):
    """Store each input and params function's signature on the function, once.

    For every job Snakemake asks ``inspect.signature`` which arguments (wildcards, input,
    threads, ...) each of the rule's functions takes, three times per function: 50,000 calls
    for a 1,000-scan study. Snakemake reads a function's ``_overwrite_params`` attribute
    instead when it is set (``snakemake.common.get_function_params``), so the same mapping
    stored there once gives the same answers at no cost; a Snakemake without that hook
    ignores the attribute (benchmarks/README.md, bench_dag.py)."""
    for step in rules:
        for item in [*step.input, *step.params]:
            # a flagged function (unpack) is held as a path object: the function inside
            function = getattr(getattr(item, "_file", item), "callable", None) or item
            if callable(function) and not hasattr(function, "_overwrite_params"):
                with contextlib.suppress(AttributeError, TypeError, ValueError):
                    function._overwrite_params = inspect.signature(function).parameters
