"""Config edits rerun exactly what they change: the rerun matrix of issue 11.

One tiny study (tests/workflow/windows.yaml, 4 subjects, sub-03 without its acceptance scan:
7 scans, models logan_ref and mrtm2) is run once. Then every leaf key of the config schema
is edited in turn and ``snakemake -n`` is asked what it would rerun (a dry run: nothing is
computed, the finished run stays as it is).

What is compared: the *root* jobs of the plan, i.e. the jobs scheduled for a reason of their
own (params changed, set of input files changed, output missing) rather than only because an
upstream output is remade ("Input files updated by another job"). Snakemake names one reason
per job, so a job downstream of a root shows the upstream reason even when its own params
changed too: the expected roots below are the most upstream jobs that read the key, and every
other scheduled job must be downstream-only. That nothing *else* reads the config behind
Snakemake's back is checked by ``test_no_run_block_reads_config``.

Keys that change nothing on this study (documented in config/README.md, "What an edit
reruns"): the ``demo`` keys (bids_dir is a real dataset), ``selection.exclude_sessions``
(no scan has a session label). ``selection.sessions`` and ``selection.runs`` name labels this
dataset does not have, so editing them is an error that names the labels, not a rerun.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from painted import write_painted_study

from pipeline.config import load_schema, validate_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SCENARIO = ROOT / "tests/workflow/windows.yaml"

#: Rules named in every plan that has any job (the target rule), left out of comparisons.
_TARGET = {"all"}
_DOWNSTREAM = "Input files updated by another job"

# Scans of the study: 4 task-rejection scans, 3 task-acceptance scans (sub-03 has none).
REJ, ACC, SCANS = 4, 3, 7


def maps(*conditions: str) -> str:
    """The map rule of the scans that hold exactly ``conditions`` (parametric.smk): one job
    per scan writes its mask and the maps of all its windows."""
    return "parametric_maps_" + "_".join(conditions)


#: The map rules of this design: rejection scans (rejbase, rejection) and acceptance scans.
MAPS_REJ, MAPS_ACC = maps("rejbase", "rejection"), maps("accbase", "acceptance")
#: Both map rules, one job per scan: what an edit read by every map job reruns.
EVERY_MAP = {MAPS_REJ: REJ, MAPS_ACC: ACC}

#: key -> (new value, expected root jobs {rule: count}). A value of ... means a special
#: edit made by the fixture (a path to a copy). Every leaf of the schema is listed (the test
#: below checks that), with the dynamic keys (conditions, contrasts, models) of windows.yaml.
#: fit_regions is one job per scan (every model, the release model shared), and the maps
#: one job per scan (mask and every window): an edit that reaches one model or one window
#: of a scan reruns that scan's job, which remakes the scan's other models or windows too
#: (coarser than one job per model or window, never stale). An edit that moves a condition
#: to other scans changes the set of maps those scans hold: their jobs are then those of
#: another map rule (maps(...)), and a scan that loses a condition remakes its remaining
#: maps (its job's params changed), where one job per window would have left them.
EDITS: dict[str, tuple] = {
    # ---- where the data are -------------------------------------------------------------
    # a copy of the same dataset elsewhere: the first steps that read an image (set of input
    # files changed; the others are downstream of them, region_qc too: it runs after its
    # scan's extract_tacs, whose loaded image it reuses) and the description's sources
    "bids_dir": (..., {"extract_tacs": SCANS, "dataset_description": 1}),
    # the same images as PETPrep-style derivatives: every step that reads an image first
    "preproc_dir": (..., {"extract_tacs": SCANS, "dataset_description": 1}),
    # a new output folder: every output is missing (checked against the first plan)
    "output_dir": (..., None),
    # a copy of the region config: the first steps that read it (region_qc is downstream
    # of extract_tacs; the map jobs read it for their masks, and list it in their params)
    "regions": (..., {"extract_tacs": SCANS, **EVERY_MAP}),
    # ---- preprocessing (this study is in MNI space: no scan is preprocessed) ------------
    # on: every scan would be preprocessed, which needs a T1w: refused at parse time
    "preprocessing": ("on", "needs the subject's T1w"),
    # the motion and normalization keys reach only the preprocessing steps (their matrix on
    # a scanner-space study: test_preprocess_workflow.py); here only the printed config
    "motion.fd_mm": (1.0, {"report": 1}),
    "motion.max_displacement_mm": (5.0, {"report": 1}),
    "motion.max_outlier_fraction": (0.5, {"report": 1}),
    "motion.reference_start": (20.0, {"report": 1}),
    "normalization.resolution": (3.0, {"report": 1}),
    # ---- selection ----------------------------------------------------------------------
    # sub-03 goes: the group table and the maps of the 2 contrasts it is in lose inputs
    "selection.subjects": (["01", "02", "04"], {"collect_bp_nd": 1, "voxelwise_contrast": 2}),
    "selection.sessions": (["1"], "match no PET scan"),
    # the acceptance scans go: the shared k2' of the 3 subjects that had one, i.e. the fit
    # and map jobs of each one's rejection scan (each estimates k2' from all the subject's
    # TACs, and has one input fewer), and a new region overlay for them (the overlay is
    # drawn on each subject's first scan)
    "selection.tasks": (["rejection"], {"fit_regions": 3, MAPS_REJ: 3, "region_qc": 3,
                                        "voxelwise_contrast": 2}),
    "selection.runs": (["1"], "match no PET scan"),
    "selection.exclude_subjects": (["03"], {"collect_bp_nd": 1, "voxelwise_contrast": 2}),
    # no scan has a session label: only the printed config (the report) changes
    "selection.exclude_sessions": (["1"], {"report": 1}),
    "selection.exclude_tasks": (["acceptance"], {"fit_regions": 3, MAPS_REJ: 3, "region_qc": 3,
                                                 "voxelwise_contrast": 2}),
    # ---- demo (bids_dir is a real dataset: nothing) -------------------------------------
    "demo.subjects": (3, {}),
    "demo.voxel_size": (4, {}),
    "demo.design": ("separate", {}),
    "demo.seed": (1, {}),
    "demo.study": ("two_groups", {}),
    # ---- design -------------------------------------------------------------------------
    # groups: a part alone is refused at parse time (column and levels go together)
    "design.groups.column": ("group", "'levels' is a required property"),
    "design.groups.levels": (["HC", "MDD"], "'column' is a required property"),
    "design.groups.covariates": (["age"], "'column' is a required property"),
    # rejbase is a window of the rejection scans: their fits (2 models) and rejbase maps,
    # the drift (rejection is within-scan), the contrasts, the rejection and rejvsacc maps
    "design.conditions.rejbase.window": ([10, 45], {
        "fit_regions": REJ, MAPS_REJ: REJ, "contrasts": 1,
        "voxelwise_contrast": 2}),
    # rejbase moves to the acceptance scans: every fit, new rejbase maps on those scans (and
    # the rejection scans' remaining maps: their job no longer writes rejbase)
    "design.conditions.rejbase.task": ("acceptance", {
        "fit_regions": SCANS, maps("rejbase", "accbase", "acceptance"): ACC,
        maps("rejection"): REJ, "contrasts": 1,
        "voxelwise_contrast": 2}),
    # no scan has session 1: the rejection scans lose rejbase
    "design.conditions.rejbase.session": ("1", {
        "fit_regions": REJ, maps("rejection"): REJ, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.rejection.window": ([50, 90], {
        "fit_regions": REJ, MAPS_REJ: REJ, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.rejection.task": ("acceptance", {
        "fit_regions": SCANS, maps("rejection", "accbase", "acceptance"): ACC,
        maps("rejbase"): REJ, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.rejection.session": ("1", {
        "fit_regions": REJ, maps("rejbase"): REJ, "contrasts": 1, "voxelwise_contrast": 2}),
    "design.conditions.accbase.window": ([10, 45], {
        "fit_regions": ACC, MAPS_ACC: ACC, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.accbase.task": ("rejection", {
        "fit_regions": SCANS, maps("rejbase", "rejection", "accbase"): REJ,
        maps("acceptance"): ACC, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.accbase.session": ("1", {
        "fit_regions": ACC, maps("acceptance"): ACC, "contrasts": 1, "voxelwise_contrast": 2}),
    "design.conditions.acceptance.window": ([50, 90], {
        "fit_regions": ACC, MAPS_ACC: ACC, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.acceptance.task": ("rejection", {
        "fit_regions": SCANS, maps("rejbase", "rejection", "acceptance"): REJ,
        maps("accbase"): ACC, "contrasts": 1,
        "voxelwise_contrast": 2}),
    "design.conditions.acceptance.session": ("1", {
        "fit_regions": ACC, maps("accbase"): ACC, "contrasts": 1, "voxelwise_contrast": 2}),
    # a contrast's definition: the contrasts table and that contrast's maps (and those of a
    # contrast it controls)
    "design.contrasts.rejection.baseline": ("accbase", {
        "contrasts": 1, "voxelwise_contrast": 1}),
    "design.contrasts.rejection.condition": ("acceptance", {
        "contrasts": 1, "voxelwise_contrast": 1}),
    "design.contrasts.rejection.control": ("acceptance", {
        "contrasts": 1, "voxelwise_contrast": 1}),
    "design.contrasts.acceptance.baseline": ("rejbase", {
        "contrasts": 1, "voxelwise_contrast": 2}),
    "design.contrasts.acceptance.condition": ("rejection", {
        "contrasts": 1, "voxelwise_contrast": 2}),
    # acceptance is rejvsacc's control, and a control cannot have one: a config error
    "design.contrasts.acceptance.control": ("rejection", "has a control itself"),
    # rejvsacc is controlled (its drift cancels by design)
    "design.contrasts.rejvsacc.baseline": ("accbase", {"contrasts": 1, "voxelwise_contrast": 1}),
    "design.contrasts.rejvsacc.condition": ("acceptance", {
        "contrasts": 1, "voxelwise_contrast": 1}),
    # without its control it is a plain within-scan contrast: drift-corrected
    "design.contrasts.rejvsacc.control": (None, {
        "contrasts": 1, "voxelwise_contrast": 1}),
    # ---- models -------------------------------------------------------------------------
    "models.logan_ref.t_star": (15, {"fit_regions": SCANS}),
    "models.logan_ref.weights": ("duration", {"fit_regions": SCANS}),
    "models.logan_ref.k2prime": (0.1, {"fit_regions": SCANS}),
    # options logan_ref does not take: refused when the config is read (per-model schemas)
    "models.logan_ref.n_basis": (50, "'logan_ref' does not take option(s) n_basis"),
    "models.logan_ref.theta_range": ([0.01, 1.0],
                                     "'logan_ref' does not take option(s) theta_range"),
    "models.mrtm2.t_star": (15, {"fit_regions": SCANS}),
    "models.mrtm2.weights": ("duration", {"fit_regions": SCANS}),
    "models.mrtm2.k2prime": (0.1, {"fit_regions": SCANS}),
    "models.mrtm2.n_basis": (50, "'mrtm2' does not take option(s) n_basis"),
    "models.mrtm2.theta_range": ([0.01, 1.0], "'mrtm2' does not take option(s) theta_range"),
    # a model's options: its fits
    # a new model (each of the others): its fits are missing, the group table gets more
    # inputs
    **{f"models.{m}": ({}, {"fit_regions": SCANS, "collect_bp_nd": 1})
       for m in ("srtm", "srtm_bf", "srtm2", "mrtm", "ratio")},
    # the primary model: correlations (and the report)
    "primary_model": ("mrtm2", {"correlations": 1}),
    # ---- shared k2' (estimated by each fit and map job from all the subject's TACs) ------
    # every fit and map job (a job per subject until session 6: the same jobs reran
    # downstream of it)
    "k2prime.model": ("mrtm", {"fit_regions": SCANS, **EVERY_MAP}),
    "k2prime.regions": (["thalamus_l", "thalamus_r"], {"fit_regions": SCANS, **EVERY_MAP}),
    "k2prime.window": ([0, 40], {"fit_regions": SCANS, **EVERY_MAP}),
    # ---- statistics ---------------------------------------------------------------------
    "statistics.test": ("wilcoxon", {"contrasts": 1}),
    "statistics.alpha": (0.01, {"contrasts": 1}),
    # the drift method: every within-scan fit (release-free fits), the contrasts, the maps
    "statistics.null_drift.method": ("none", {"fit_regions": SCANS, "contrasts": 1,
                                              "voxelwise_contrast": 3}),
    # the release model's start: every within-scan fit (its bp_nd_null)
    "statistics.null_drift.fit_start": (15, {"fit_regions": SCANS}),
    # how the release model gets R1 and k2, and early_step's baseline start: the same
    "statistics.null_drift.release_model": ("early_step", {"fit_regions": SCANS}),
    "statistics.null_drift.baseline_start": (25, {"fit_regions": SCANS}),
    # the systematic SD enters the tests only
    "statistics.null_drift.sys_sd": (0.5, {"contrasts": 1}),
    # pooling the drift over scans: the contrasts (their per-participant values feed the
    # voxelwise maps and correlations downstream, rerun by changed inputs, not as roots)
    "statistics.null_drift.pool": ("none", {"contrasts": 1}),
    # correlations: the table; a new (contrast, score) pair adds a voxelwise map
    "statistics.correlations.contrast": ("acceptance", {"correlations": 1,
                                                        "voxelwise_correlation": 1}),
    "statistics.correlations.region": ("thalamus_l", {"correlations": 1}),
    "statistics.correlations.score": ("age", {"correlations": 1, "voxelwise_correlation": 1}),
    "statistics.correlations.model": ("mrtm2", {"correlations": 1}),
    "statistics.correlations.covariates": (["age"], {"correlations": 1}),
    # a correlation within a group needs design.groups: refused at parse time
    "statistics.correlations.group": ("HC", "design.groups is not set"),
    "statistics.n_boot": (300, {"correlations": 1}),
    "statistics.n_perm": (300, {"correlations": 1}),
    # ---- voxelwise ----------------------------------------------------------------------
    # off: nothing is computed; the report loses inputs
    "voxelwise.enabled": (False, {"report": 1}),
    # srtm does not take the default voxelwise options (t_star, k2prime): refused at parse time
    "voxelwise.model": ("srtm", "'srtm' does not take option(s) t_star"),
    "voxelwise.options.t_star": (15, dict(EVERY_MAP)),
    "voxelwise.options.weights": ("duration", dict(EVERY_MAP)),
    "voxelwise.options.k2prime": (0.1, dict(EVERY_MAP)),
    "voxelwise.options.n_basis": (50, "'logan_ref' does not take option(s) n_basis"),
    "voxelwise.options.theta_range": ([0.01, 1.0],
                                      "'logan_ref' does not take option(s) theta_range"),
    "voxelwise.mask": ("brain", {**EVERY_MAP, "voxelwise_contrast": 3}),
    "voxelwise.n_perm": (30, {"voxelwise_contrast": 3, "voxelwise_correlation": 1}),
    "voxelwise.height_threshold": (2.5, {"voxelwise_contrast": 3, "voxelwise_correlation": 1}),
    "voxelwise.cluster_threshold": (3, {"voxelwise_contrast": 3, "voxelwise_correlation": 1}),
    "voxelwise.smoothing_fwhm": (4, {"voxelwise_contrast": 3, "voxelwise_correlation": 1}),
}


#: The report prints the configuration in effect, so it reruns on every edit that changes it:
#: all but the keys that change nothing.
for _key, (_value, _roots) in EDITS.items():
    if isinstance(_roots, dict) and _roots:
        _roots.setdefault("report", 1)
    # the rating changes read the whole design (conditions and contrasts name the columns)
    if isinstance(_roots, dict) and _key.startswith(("design.conditions.", "design.contrasts.",
                                                     "statistics.correlations.")):
        _roots.setdefault("rating_changes", 1)
    if isinstance(_roots, dict) and _key == "statistics.n_perm":
        _roots.setdefault("rating_changes", 1)


def schema_leaves(schema: dict, config: dict, prefix: str = "") -> list[str]:
    """Dotted leaf keys of the schema; dynamic keys (conditions, contrasts, models) are
    those of ``config``; arrays of objects contribute their item properties."""
    leaves = []
    for name, node in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        value = config.get(name) if isinstance(config, dict) else None
        if node.get("type") == "object" and "properties" in node:
            leaves += schema_leaves(node, value or {}, key + ".")
        elif isinstance(node.get("additionalProperties"), dict) and node.get("type") == "object":
            item = node["additionalProperties"]
            names = (node.get("propertyNames") or {}).get("enum") or []
            leaves += [f"{key}.{n}" for n in names if n not in (value or {})]  # add one
            for entry in value or {}:
                if item.get("properties"):
                    leaves += schema_leaves(item, value[entry] or {}, f"{key}.{entry}.")
                else:
                    leaves.append(f"{key}.{entry}")
        elif node.get("type") == "array" and (node.get("items") or {}).get("properties"):
            leaves += [f"{key}.{p}" for p in node["items"]["properties"]]
        elif isinstance(node.get("type"), list) and "object" in node["type"] \
                and node.get("properties"):
            leaves += schema_leaves(node, value or {}, key + ".")
        else:
            leaves.append(key)
    return leaves


def _set(config: dict, key: str, value) -> None:
    parts = key.split(".")
    node = config
    if parts[:2] == ["statistics", "correlations"] and len(parts) == 3:
        node["statistics"]["correlations"][0][parts[2]] = value  # the first correlation
        return
    for part in parts[:-1]:
        if node.get(part) is None:  # e.g. design.groups, null until set
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _snakemake(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, *args, "--nolock", "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(ROOT), "--cores", "1", "--configfile", str(config_path),
         "--replace-workflow-config"], capture_output=True, text=True, timeout=300, cwd=ROOT)


def _plan(config_path: Path) -> tuple[int, dict[str, int], str]:
    """What an edit reruns: (exit code, jobs per rule, output text).

    The jobs counted are those with a reason of their own in the dry run (root jobs) and
    those whose params changed (``--list-changes params``; Snakemake names one reason per
    job, so a job downstream of a root shows the upstream reason even when its own params
    changed too). Jobs only downstream of those are not counted.
    """
    result = _snakemake(config_path, "-n")
    text = result.stdout + result.stderr
    if result.returncode != 0:
        return result.returncode, {}, text
    job_of: dict[str, tuple[str, str]] = {}
    changed: set[tuple[str, str]] = set()
    rule = outputs = None
    for line in text.splitlines():
        head = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if head:
            rule, outputs = head[1], []
            continue
        if rule is None:
            continue
        listed = re.match(r"^\s+output: (.*)$", line)
        if listed:
            outputs = listed[1].split(", ")
            for path in outputs:
                job_of[path] = (rule, outputs[0])
        reason = re.match(r"^\s+reason: (.*)$", line)
        if reason:
            if rule not in _TARGET and (not reason[1].startswith(_DOWNSTREAM)
                                        or "; " in reason[1]):
                changed.add((rule, (outputs or ["?"])[0]))
            rule = None
    params = _snakemake(config_path, "--list-changes", "params")
    for line in params.stdout.splitlines():
        if line.strip() in job_of:
            changed.add(job_of[line.strip()])
    counts: dict[str, int] = {}
    for rule, _ in changed:
        counts[rule] = counts.get(rule, 0) + 1
    return 0, counts, text


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The windows scenario run once; (base config dict, tmp folder)."""
    tmp = tmp_path_factory.mktemp("rerun")
    bids = write_painted_study(tmp / "bids", subjects=4, seed=3, voxel_size=6,
                               missing=(("03", "acceptance"),))
    config = yaml.safe_load(SCENARIO.read_text())
    config.update(bids_dir=str(bids), output_dir=str(tmp / "out"))
    validate_config(config)  # every key explicit (the schema's defaults), so each can be edited
    path = tmp / "base.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
         "--cores", "2", "--force-use-threads", "--configfile", str(path),
         "--replace-workflow-config"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-4000:]
    return config, tmp


def _special(key: str, config: dict, tmp: Path) -> dict:
    from factories import make_preproc

    edited = copy.deepcopy(config)
    if key == "bids_dir":
        copy_dir = tmp / "bids_copy"
        if not copy_dir.exists():
            shutil.copytree(config["bids_dir"], copy_dir)
        edited["bids_dir"] = str(copy_dir)
    elif key == "preproc_dir":
        preproc = tmp / "preproc"
        if not preproc.exists():
            make_preproc(Path(config["bids_dir"]), preproc)
        edited["preproc_dir"] = str(preproc)
    elif key == "output_dir":
        edited["output_dir"] = str(tmp / "elsewhere")
    elif key == "regions":
        target = tmp / "regions_copy.yaml"
        shutil.copyfile(ROOT / "config/regions.yaml", target)
        edited["regions"] = str(target)
    return edited


def test_every_schema_leaf_is_in_the_matrix():
    """Adding a config key without saying what it reruns fails here."""
    config = validate_config(yaml.safe_load(SCENARIO.read_text()))
    assert sorted(schema_leaves(load_schema(), config)) == sorted(EDITS)


@pytest.mark.slow
def test_each_config_edit_reruns_exactly_what_reads_it(finished):
    """For every key: the dry run's root jobs are exactly those that read the key."""
    config, tmp = finished
    code, roots, text = _plan(tmp / "base.yaml")
    assert code == 0 and "Nothing to be done" in text, text[-3000:]  # unchanged: idle
    first_plan = _full_plan(config, tmp)

    def check(key):
        value, expected = EDITS[key]
        edited = _special(key, config, tmp) if value is ... else copy.deepcopy(config)
        if value is not ...:
            _set(edited, key, value)
        path = tmp / f"edit_{key.replace('.', '_')}.yaml"
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        return key, expected, _plan(path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, sorted(EDITS)))
    problems = []
    for key, expected, (code, roots, text) in results:
        if isinstance(expected, str):  # an edit the workflow refuses, with this message
            if code == 0 or expected not in text:
                problems.append(f"{key}: expected an error saying {expected!r}, got exit {code}")
            continue
        if code != 0:
            problems.append(f"{key}: dry run failed: {text[-800:]}")
            continue
        if expected is None:  # a new output folder: every job, as on a first run
            expected = first_plan
        if roots != expected:
            problems.append(f"{key}: roots {roots}, expected {expected}")
    assert not problems, "\n".join(problems)


def _full_plan(config: dict, tmp: Path) -> dict[str, int]:
    fresh = dict(config, output_dir=str(tmp / "fresh"))
    path = tmp / "fresh.yaml"
    path.write_text(yaml.safe_dump(fresh, sort_keys=False))
    return _plan(path)[1]


def test_no_run_block_reads_config():
    """Run blocks use only input, output, params, wildcards, log and helpers: no step reads
    the config (or a module-level value made from it) behind Snakemake's back. The one
    exception, the dataset description's config checksum, is provenance and by design not a
    rerun trigger."""
    from_config = {"config", "DESIGN", "MODELS", "PRIMARY", "VOXELWISE", "VOX_MODEL",
                   "REGION_SET", "REFERENCE", "BIDS_DIR", "PREPROC_DIR", "DEMO",
                   # the loop variables of the map rules (parametric.smk), which a run block
                   # would also see late-bound (the last rule's values)
                   "_conds", "_scans", "MAP_KEYS", "MODEL_KEYS", "FIT_OUTPUTS", "FIT_MODELS",
                   "FITS_NEED_K2PRIME", "MAPS_NEED_K2PRIME"}
    allowed_exception = {("dataset_description", "config")}
    found, names_seen = [], []
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for name, code in _run_blocks(smk.read_text()):
            names_seen.append(name)
            names = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
            found += [(name, n) for n in sorted(names & from_config)
                      if (name, n) not in allowed_exception]
    # every rule's run block was read, also those of the rules made in a loop (22 since the
    # subject's k2' is estimated in fit_regions)
    assert len(names_seen) >= 22 and "fit_regions" in names_seen, names_seen
    assert any("parametric_maps_" in name for name in names_seen), names_seen
    assert not found, f"run blocks reading the config: {found}"


def _run_blocks(text: str) -> list[tuple[str, str]]:
    """(rule name, dedented code) of every run block of a .smk file, with the rules defined
    in a loop (``rule:`` indented, named by a ``name:`` directive)."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        head = re.match(r"^( *)(?:rule|checkpoint)(?: (\w+))?:$", line)
        if not head:
            continue
        indent, name = len(head[1]), head[2]
        body = []
        for later in lines[i + 1:]:
            if later.strip() and len(later) - len(later.lstrip()) <= indent:
                break
            body.append(later)
        if name is None:  # name:\n    "literal" + ..., the literal part is enough here
            directive = "\n".join(body)
            named = re.search(r"^ *name:\n *(.+)$", directive, re.M)
            name = named[1].strip() if named else "?"
        for j, item in enumerate(body):
            if item == " " * (indent + 4) + "run:":
                code = []
                for rest in body[j + 1:]:
                    if rest.strip() and len(rest) - len(rest.lstrip()) <= indent + 4:
                        break
                    code.append(rest[indent + 8:])
                blocks.append((name, "\n".join(code)))
    return blocks


@pytest.mark.slow
def test_preproc_inputs_give_the_same_group_tables(finished):
    """The same images as PETPrep-style derivatives (preproc_dir) give the group tables of
    the raw run, bit for bit; the output is a derivatives dataset naming both sources."""
    from factories import make_preproc

    config, tmp = finished
    preproc = tmp / "preproc"
    if not preproc.exists():
        make_preproc(Path(config["bids_dir"]), preproc)
    edited = dict(config, preproc_dir=str(preproc), output_dir=str(tmp / "out_preproc"))
    path = tmp / "preproc.yaml"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    run = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
         "--cores", "2", "--force-use-threads", "--configfile", str(path),
         "--replace-workflow-config"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-4000:]
    raw_out, pre_out = Path(config["output_dir"]), tmp / "out_preproc"
    for name in ("bp_nd", "contrasts", "contrast_values", "exclusions", "correlations",
                 "null_drift"):
        assert (pre_out / f"group/{name}.tsv").read_bytes() == \
            (raw_out / f"group/{name}.tsv").read_bytes(), name
    description = json.loads((pre_out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert [s["URL"] for s in description["SourceDatasets"]] == \
        [Path(config["bids_dir"]).resolve().as_uri(), preproc.resolve().as_uri()]
    tacs = json.loads(next(pre_out.rglob("*_desc-default_tacs.json")).read_text())
    assert "desc-preproc_pet.nii.gz" in json.dumps(tacs)  # the derivative was read


def test_output_is_a_derivatives_dataset(finished):
    """dataset_description.json (BIDS 1.9 derivative) and working files under .petbp/."""
    from pipeline import __version__

    config, _ = finished
    out = Path(config["output_dir"])
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["BIDSVersion"] == "1.9.0" and description["Name"]
    (generated,) = description["GeneratedBy"]
    assert generated["Name"] == "petbp" and generated["Version"] == __version__
    assert "snakemake" in generated["Command"]
    assert re.fullmatch(r"[0-9a-f]{64}", generated["ConfigSHA256"])
    assert description["SourceDatasets"] == [{"URL": Path(config["bids_dir"]).resolve()
                                              .as_uri()}]
    assert ".petbp/" in (out / ".bidsignore").read_text().split()
    assert (out / ".petbp/logs").is_dir() and not (out / "logs").exists()
    assert not (out / "cache").exists()
    top = {p.name for p in out.iterdir()}
    assert top <= {".petbp", ".bidsignore", "dataset_description.json", "group", "report.html",
                   "methods.md", "sub-01", "sub-02", "sub-03", "sub-04"}, top


def test_report_warns_about_outputs_made_with_other_config(finished, tmp_path):
    """``petbp report`` with an edited config shows the warning, naming the key."""
    config, _ = finished
    edited = copy.deepcopy(config)
    edited["statistics"]["alpha"] = 0.01
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    from pipeline.report import write_report

    out = Path(config["output_dir"])
    same = write_report(out, config, tmp_path / "same.html", figure_dir=tmp_path / "f1")
    assert "Outputs made with a different configuration" not in same.read_text()
    html = write_report(out, edited, tmp_path / "edited.html",
                        figure_dir=tmp_path / "f2").read_text()
    assert "Outputs made with a different configuration" in html
    assert "statistics.alpha" in html and "group/contrasts.json" in html
