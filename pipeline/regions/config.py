"""Region configs: read ``regions.yaml``, validate it against its schema, resolve labels.

Everything that can be checked without a PET grid is checked here, so a typo stops the
run before any image is read: YAML syntax, unknown keys (with the closest allowed key),
unknown atlases and labels (with the closest label), a reference or exclusion naming a
region that does not exist, missing files. Problems that depend on the grid (a region
empty after resampling, overlaps, too small a reference) are found by
:func:`pipeline.regions.build_masks`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import data_file
from pipeline.errors import ConfigError, format_problem
from pipeline.regions.atlas import BUILTIN_ATLASES, Atlas, builtin_atlas, user_atlas
from pipeline.yamlfile import DuplicateKeyError, duplicate_key_error, load_yaml

__all__ = [
    "DEFAULT_REGION_CONFIG",
    "REGIONS_SCHEMA",
    "RegionSet",
    "RegionSpec",
    "load_region_config",
]

#: The region config shipped with petbp (package data; ``config/regions.yaml`` in a clone).
DEFAULT_REGION_CONFIG = data_file("regions.yaml")
#: The JSON schema (YAML) every region config is validated against (package data).
REGIONS_SCHEMA = data_file("regions.schema.yaml")


@dataclass(frozen=True)
class RegionSpec:
    """One region as the config defines it (labels already resolved to indices).

    Exactly one of ``atlas``/``labels``, ``sphere`` or ``mask`` defines the region; the
    other fields restrict it. Distances are mm, probabilities 0-1.
    """

    name: str
    description: str = ""
    atlas: Atlas | None = None
    labels: tuple[int, ...] = ()
    threshold: float = 0.5
    weights: str = "binary"
    sphere_center: tuple[float, float, float] | None = None
    sphere_radius: float | None = None
    mask: Path | None = None
    hemisphere: str | None = None
    grey_matter: float | None = None
    erode_mm: float = 0.0
    erode_voxels: int = 0
    exclude: tuple[str, ...] = ()
    exclude_margin_mm: float = 0.0


@dataclass(frozen=True)
class RegionSet:
    """A validated region config.

    Attributes
    ----------
    name : str
        Region-set label for file names (``desc-<name>``).
    path : Path
        The config file (named in every error message).
    regions : dict of str to RegionSpec
        Regions in config order.
    reference : str
        The reference region's name.
    allow_overlap : bool or frozenset of frozenset
        Overlap policy: True, False, or the region pairs that may overlap.
    min_reference_voxels : int
        Fewest voxels the reference may have on a PET grid.
    grey_matter_map : Path or None
        Tissue map for grey-matter restriction (None: nilearn's MNI152 template).
    digest : str
        SHA-256 of the config and the files it names (the mask-cache key).
    raw : dict
        The config as read (for sidecars).
    """

    name: str
    path: Path
    regions: dict[str, RegionSpec]
    reference: str
    allow_overlap: bool | frozenset = False
    min_reference_voxels: int = 100
    grey_matter_map: Path | None = None
    digest: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Region names in config order."""
        return list(self.regions)

    def overlap_allowed(self, a: str, b: str) -> bool:
        """Whether regions ``a`` and ``b`` may share voxels."""
        if isinstance(self.allow_overlap, bool):
            return self.allow_overlap
        return frozenset((a, b)) in self.allow_overlap

    def atlases(self) -> list[Atlas]:
        """The atlases the regions use, once each."""
        seen: dict[str, Atlas] = {}
        for spec in self.regions.values():
            if spec.atlas is not None:
                seen.setdefault(spec.atlas.name, spec.atlas)
        return list(seen.values())


def load_region_config(path: str | Path | None = None) -> RegionSet:
    """Read and validate a region config (YAML).

    Parameters
    ----------
    path : str or Path, default=None
        The config file; None reads :data:`DEFAULT_REGION_CONFIG`.

    Returns
    -------
    RegionSet
        The validated regions, labels resolved to atlas indices.

    Raises
    ------
    ConfigError
        Naming the file and region: invalid YAML, a key the schema does not know (with the
        closest allowed key), an unknown atlas or label (with the labels that exist and the
        closest match), a missing file, or a reference/exclusion naming no region.
    """
    import yaml

    path = Path(DEFAULT_REGION_CONFIG if path is None else path)
    if not path.is_file():
        raise ConfigError(format_problem(path, "region config not found",
                                         f"Check the path, or start from {DEFAULT_REGION_CONFIG}."))
    try:
        raw = load_yaml(path.read_text())
    except DuplicateKeyError as err:
        raise duplicate_key_error(path, err) from None
    except yaml.YAMLError as err:
        raise ConfigError(format_problem(path, f"not valid YAML ({err})",
                                         "Fix the YAML syntax (indentation, colons).")) from None
    if not isinstance(raw, dict):
        raise ConfigError(format_problem(path, "the file does not hold a mapping of keys",
                                         "Start from config/regions.yaml."))
    _validate(raw, path)
    folder = path.parent
    atlases = _user_atlases(raw.get("atlases", {}), folder, path)
    regions: dict[str, RegionSpec] = {}
    for name, entry in raw["regions"].items():
        regions[name] = _region(name, entry, raw, atlases, folder, path)
    names = list(regions)
    reference = raw["reference"]
    if reference not in regions:
        raise ConfigError(format_problem(
            f"{path}, reference", f"'{reference}' is not a region of this config"
            + _closest(reference, names), f"Name one of: {', '.join(names)}."))
    for name, spec in regions.items():
        for other in spec.exclude:
            if other not in regions or other == name:
                raise ConfigError(format_problem(
                    f"{path}, region '{name}'", f"exclude names '{other}', which is not another "
                    "region of this config" + _closest(other, names),
                    f"Name one of: {', '.join(n for n in names if n != name)}."))
    overlap = raw.get("allow_overlap", False)
    if not isinstance(overlap, bool):
        for pair in overlap:
            for member in pair:
                if member not in regions:
                    raise ConfigError(format_problem(
                        f"{path}, allow_overlap", f"'{member}' is not a region"
                        + _closest(member, names), f"Name regions from: {', '.join(names)}."))
        overlap = frozenset(frozenset(pair) for pair in overlap)
    gm_map = raw.get("grey_matter_map")
    gm_path = _existing(folder, gm_map, f"{path}, grey_matter_map") if gm_map else None
    set_name = raw.get("name") or re.sub(r"[^A-Za-z0-9]", "", path.name.split(".")[0]) or "regions"
    return RegionSet(name=set_name, path=path, regions=regions, reference=reference,
                     allow_overlap=overlap, min_reference_voxels=raw.get("min_reference_voxels",
                                                                         100),
                     grey_matter_map=gm_path, digest=_digest(raw, regions, gm_path), raw=raw)


def _schema() -> dict:
    return load_yaml(REGIONS_SCHEMA.read_text())


def _validate(raw: dict, path: Path) -> None:
    import jsonschema

    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema)
    # Shallowest first; at one depth, unknown keys first (a misspelt 'lables' also fails oneOf).
    errors = sorted(validator.iter_errors(raw),
                    key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties",
                                   str(e.path)))
    if not errors:
        return
    err = errors[0]
    keys = [str(k) for k in err.absolute_path]
    where = f"{path}, " + (f"region '{keys[1]}'" if keys[:1] == ["regions"] and len(keys) > 1
                           else ".".join(keys) or "top level")
    if len(keys) > 2 and keys[0] == "regions":
        where += ", " + ".".join(keys[2:])
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        hints = [f"'{k}'" + _closest(k, allowed) for k in extra]
        raise ConfigError(format_problem(where, "unknown key(s) " + ", ".join(hints),
                                         f"Allowed keys: {', '.join(allowed)}."))
    if err.validator == "oneOf" and keys[:1] == ["regions"]:
        given = [k for k in ("labels", "sphere", "mask") if k in err.instance]
        raise ConfigError(format_problem(
            where, f"a region needs exactly one of labels, sphere or mask; got "
            f"{', '.join(given) or 'none'}", "Keep one of them (see config/README.md)."))
    raise ConfigError(format_problem(
        where, err.message, "See workflow/schemas/regions.schema.yaml for allowed values."))


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _existing(folder: Path, name: str, where: str) -> Path:
    candidate = Path(name).expanduser()
    candidate = candidate if candidate.is_absolute() else folder / candidate
    if not candidate.is_file():
        raise ConfigError(format_problem(where, f"file {candidate} not found",
                                         "Give a path relative to the region config, or absolute."))
    return candidate


def _user_atlases(entries: dict, folder: Path, path: Path) -> dict[str, Atlas]:
    atlases = {}
    for name, entry in entries.items():
        where = f"{path}, atlases.{name}"
        if name in BUILTIN_ATLASES:
            raise ConfigError(format_problem(where, f"'{name}' is the name of a built-in atlas",
                                             "Give your atlas another name."))
        atlas = user_atlas(name, _existing(folder, entry["image"], where),
                           _existing(folder, entry["labels"], where), entry["kind"],
                           percent=entry.get("percent"), where=where)
        atlases[name] = Atlas(**{**atlas.__dict__, "licence": entry.get("licence",
                                                                         "user-supplied"),
                                 "citation": entry.get("citation", "")})
    return atlases


def _region(name: str, entry: dict, raw: dict, atlases: dict[str, Atlas], folder: Path,
            path: Path) -> RegionSpec:
    where = f"{path}, region '{name}'"
    spec: dict[str, Any] = {
        "name": name, "description": entry.get("description", ""),
        "threshold": float(entry.get("threshold", raw.get("threshold", 0.5))),
        "weights": entry.get("weights", "binary"), "hemisphere": entry.get("hemisphere"),
        "grey_matter": entry.get("grey_matter"), "erode_mm": float(entry.get("erode_mm", 0.0)),
        "erode_voxels": int(entry.get("erode_voxels", 0)),
        "exclude": tuple(entry.get("exclude", ())),
        "exclude_margin_mm": float(entry.get("exclude_margin_mm", 0.0)),
    }
    if "labels" in entry:
        atlas_name = entry.get("atlas", raw.get("atlas", "harvard_oxford"))
        if atlas_name in atlases:
            atlas = atlases[atlas_name]
        elif atlas_name in BUILTIN_ATLASES:
            atlas = builtin_atlas(atlas_name)
        else:
            known = sorted([*BUILTIN_ATLASES, *atlases])
            raise ConfigError(format_problem(
                where, f"atlas '{atlas_name}' is not defined" + _closest(atlas_name, known),
                f"Use a built-in atlas or one defined under 'atlases': {', '.join(known)}."))
        spec["atlas"] = atlas
        spec["labels"] = tuple(atlas.resolve(label, where) for label in entry["labels"])
        if spec["weights"] == "probability" and atlas.kind != "probabilistic":
            raise ConfigError(format_problem(
                where, f"weights: probability needs a probabilistic atlas; '{atlas.name}' is a "
                "label atlas", "Use 'weights: binary' or a probabilistic atlas."))
    elif "sphere" in entry:
        spec["sphere_center"] = tuple(float(v) for v in entry["sphere"]["center"])
        spec["sphere_radius"] = float(entry["sphere"]["radius"])
    else:
        spec["mask"] = _existing(folder, entry["mask"], where)
    return RegionSpec(**spec)


def _digest(raw: dict, regions: dict[str, RegionSpec], gm_path: Path | None) -> str:
    """Hash of the config content and of the size/mtime of every file it uses."""
    files = [gm_path] if gm_path else []
    for spec in regions.values():
        if spec.mask is not None:
            files.append(spec.mask)
        if spec.atlas is not None:
            files += [spec.atlas.image, spec.atlas.table]
    stamps = sorted({f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f})
    text = json.dumps({"config": raw, "files": stamps, "version": 1}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
