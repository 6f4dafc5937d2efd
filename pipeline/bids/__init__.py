"""BIDS-PET input: find the PET scans of a dataset, read their sidecars, images and scores.

A scan is a 4D NIfTI ``sub-<l>/[ses-<s>/]pet/sub-<l>[_ses-<s>]..._pet.nii[.gz]`` with a JSON
sidecar. Sidecar fields are merged by BIDS inheritance: ``*_pet.json`` files higher up the tree
(dataset root, subject, session folder) whose entities are a subset of the scan's apply too,
and the file nearest the image wins. Frame times are converted from seconds to minutes once,
when a scan is read; every label is checked against ``[A-Za-z0-9]+`` before it is used in a
path; images are loaded in Bq/mL, decay-corrected to injection.

Modules (each imports only the ones above it in this list):

- :mod:`~pipeline.bids.entities`: labels and file-name entities;
- :mod:`~pipeline.bids.sidecars`: reading sidecars and their inheritance chain;
- :mod:`~pipeline.bids.headers`: NIfTI shape and affine without the data;
- :mod:`~pipeline.bids.preprocessed`: pairing scans with preprocessed images (``preproc_dir``);
- :mod:`~pipeline.bids.scan`: :class:`Scan` and :func:`read_scan`;
- :mod:`~pipeline.bids.scan_cache`: scans read at an earlier parse, while their files are
  unchanged;
- :mod:`~pipeline.bids.discovery`: :func:`discover_scans`, :func:`inspect_scans`;
- :mod:`~pipeline.bids.images`: :func:`load_pet` and :class:`PetImage`;
- :mod:`~pipeline.bids.image_cache`: a loaded scan kept for a run's later steps;
- :mod:`~pipeline.bids.participants`: ``participants.tsv`` and its scores.

The names below are the package's interface (``from pipeline import bids``;
``bids.discover_scans(...)``). Modules inside the package import each other by module, never
this package, so there is no import cycle.
"""

from pipeline.bids.discovery import discover_scans, inspect_scans, scans_table
from pipeline.bids.entities import ENTITY_ORDER, LABEL_PATTERN, check_label, normalize_labels
from pipeline.bids.images import PetImage, load_pet
from pipeline.bids.participants import numeric_score, read_participants
from pipeline.bids.scan import Scan, read_scan

__all__ = [
    "ENTITY_ORDER",
    "LABEL_PATTERN",
    "PetImage",
    "Scan",
    "check_label",
    "discover_scans",
    "inspect_scans",
    "load_pet",
    "normalize_labels",
    "numeric_score",
    "read_participants",
    "read_scan",
    "scans_table",
]
