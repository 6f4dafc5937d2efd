"""``petbp simulate --out DIR``: write a simulated [11C]carfentanil study with known truth.

Calls :func:`pipeline.simulate.simulate_study` (or :func:`pipeline.simulate.write_demo_study`
with ``--demo``; :func:`pipeline.simulate.scanner_study.simulate_scanner_study` with
``--space scanner``): the BIDS-PET dataset goes to ``DIR/bids`` and the truth to
``DIR/truth``. The same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.errors import ConfigError, format_problem

__all__ = ["ORDER", "add_parser", "run"]

ORDER = 40


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``petbp simulate``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``petbp`` parser's subcommands.
    """
    parser = subparsers.add_parser(
        "simulate", help="simulate a [11C]carfentanil study (BIDS-PET + truth)",
        description="Simulate a dynamic [11C]carfentanil PET study with planted endogenous "
        "opioid release: a BIDS-PET dataset in OUT/bids (4D NIfTI + JSON, participants.tsv "
        "with resilience, age, sex) and the truth in OUT/truth (true BP_ND per subject, scan, "
        "condition and region; planted release; settings). Same seed, same bytes.")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="output folder (bids/ and truth/ are written inside)")
    parser.add_argument("--subjects", type=int, default=12,
                        help="number of subjects (default 12)")
    parser.add_argument("--design", choices=["windows", "separate"], default="windows",
                        help="windows: task-rejection and task-acceptance bolus+infusion scans, "
                        "release from 45 min; separate: task-baseline, task-rejection, "
                        "task-acceptance bolus scans (default windows)")
    parser.add_argument("--seed", type=int, default=2013, help="random seed (default 2013)")
    parser.add_argument("--null", action="store_true",
                        help="plant no release at all (scores are still simulated)")
    parser.add_argument("--noise", type=float, default=1.0,
                        help="noise level, a multiple of the default noise standard "
                        "deviation; 0 = noiseless (default 1)")
    parser.add_argument("--voxel-size", type=float, default=3.0, metavar="MM",
                        help="isotropic voxel size in mm of the MNI152 grid (default 3); with "
                        "--space scanner, of the MNI phantom the activity is drawn on (the "
                        "PET is written on its scanner grid, see --scanner-voxel-size)")
    parser.add_argument("--scanner-voxel-size", type=float, default=2.0, metavar="MM",
                        help="with --space scanner: the PET voxel size in mm; the matrix "
                        "keeps a 256 x 256 x 192 mm field of view (default 2: 128x128x96)")
    parser.add_argument("--release", choices=["step", "ramp"], default="step",
                        help="time course of the release: a step at the onset, or a linear "
                        "ramp over --ramp minutes (default step)")
    parser.add_argument("--ramp", type=float, default=10.0, metavar="MIN",
                        help="ramp duration in minutes (default 10)")
    parser.add_argument("--demo", action="store_true",
                        help="write the built-in demo study (larger effects, noise 0.5); "
                        "--null and --noise are then ignored")
    parser.add_argument("--two-groups", action="store_true",
                        help="a patient-vs-control study: the subjects split into HC and MDD "
                        "(first half HC), controls releasing 5-8 %% in six regions, patients "
                        "none, a group column in participants.tsv and a desire rating in "
                        "phenotype/ (with --demo: the built-in two-group demo)")
    parser.add_argument("--space", choices=["mni", "scanner"], default="mni",
                        help="mni: images on the MNI152 grid (analysed as is); scanner: raw "
                        "images as a PET scanner writes them (each scan its own head pose, "
                        "motion up to 3 mm / 2 deg by the end of the scan, 2 mm voxels, "
                        "128x128x96), a T1w per subject, and the true transforms in "
                        "OUT/truth/transforms; the workflow then preprocesses every scan "
                        "(default mni)")
    parser.add_argument("--force", action="store_true",
                        help="write into OUT even if it already holds a dataset")
    parser.set_defaults(func=run)
    return parser


def _check(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if args.subjects < 1:
        raise ConfigError(format_problem("--subjects", f"got {args.subjects}",
                                         "Simulate at least 1 subject."))
    if args.ramp <= 0:
        raise ConfigError(format_problem("--ramp", f"got {args.ramp:g}",
                                         "Give the ramp duration in minutes (> 0)."))
    if not 1.0 <= args.scanner_voxel_size <= 8.0:
        raise ConfigError(format_problem(
            "--scanner-voxel-size", f"got {args.scanner_voxel_size:g} mm",
            "Give a PET voxel size between 1 and 8 mm (2 is typical)."))
    if args.noise < 0:
        raise ConfigError(format_problem("--noise", f"got {args.noise:g}",
                                         "Give a noise level >= 0 (1 = default noise)."))
    if args.space == "scanner" and (args.demo or args.two_groups):
        raise ConfigError(format_problem(
            "--space scanner", "cannot be combined with --demo or --two-groups",
            "Leave out --demo/--two-groups (a scanner-space study has one group), or use "
            "--space mni."))
    if (out / "bids" / "dataset_description.json").exists() and not args.force:
        raise ConfigError(format_problem(
            out, "already holds a simulated dataset (bids/dataset_description.json)",
            "Choose another --out folder, or add --force to overwrite it."))
    return out


def run(args: argparse.Namespace) -> int:
    """Simulate and print where the dataset and truth went.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``petbp simulate`` arguments.
    """
    from pipeline.simulate.carfentanil import StudySettings
    from pipeline.simulate.study import simulate_study, write_demo_study

    out = _check(args)
    settings = StudySettings(release_kind=args.release, ramp=args.ramp)
    start = time.perf_counter()
    if args.space == "scanner":
        from pipeline.simulate.scanner_study import ScannerSettings, simulate_scanner_study

        size = args.scanner_voxel_size
        scanner = ScannerSettings(pet_voxel_mm=size, pet_shape=tuple(
            round(mm / size) for mm in (256.0, 256.0, 192.0)))
        bids = simulate_scanner_study(out, subjects=args.subjects, design=args.design,
                                      seed=args.seed, null=args.null, noise=args.noise,
                                      mni_voxel_size=args.voxel_size, scanner=scanner,
                                      settings=settings)
    elif args.demo:
        bids = write_demo_study(out, subjects=args.subjects, voxel_size=args.voxel_size,
                                design=args.design, seed=args.seed,
                                study="two_groups" if args.two_groups else "single")
    elif args.two_groups:
        from dataclasses import replace

        from pipeline.simulate.group_study import two_group_demo

        plan, groups, ratings = two_group_demo(args.subjects)
        bids = simulate_study(out, subjects=args.subjects, design=args.design, seed=args.seed,
                              null=args.null, noise=args.noise, voxel_size=args.voxel_size,
                              settings=replace(plan, release_kind=args.release,
                                               ramp=args.ramp),
                              groups=groups, ratings=ratings)
    else:
        bids = simulate_study(out, subjects=args.subjects, design=args.design, seed=args.seed,
                              null=args.null, noise=args.noise, voxel_size=args.voxel_size,
                              settings=settings)
    n_images = len(list(bids.glob("sub-*/pet/*_pet.nii.gz")))
    space = "scanner space, a T1w per subject" if args.space == "scanner" else "MNI space"
    print(f"petbp simulate: {n_images} scans of {args.subjects} subjects ({args.design} "
          f"design, {space}) in {time.perf_counter() - start:.1f} s")
    print(f"  dataset: {bids}")
    print(f"  truth:   {out / 'truth'} (bp_nd.tsv, effects.tsv, truth.json"
          + (", transforms/: head pose, motion and anatomy per scan" if args.space == "scanner"
             else "") + ")")
    return 0
