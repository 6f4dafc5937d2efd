"""Tests of region-config loading: schema, labels, references, clear errors."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.regions import DEFAULT_REGION_CONFIG, load_region_config

REQUIRED = ["amygdala_l", "amygdala_r", "nacc_l", "nacc_r", "thalamus_l", "thalamus_r",
            "caudate_l", "caudate_r", "putamen_l", "putamen_r", "acc", "insula_l", "insula_r",
            "pag", "occipital"]


def test_load_region_config_default_has_required_regions():
    """The shipped config defines every region the reports use, occipital as reference."""
    region_set = load_region_config()
    assert region_set.path == DEFAULT_REGION_CONFIG
    assert set(REQUIRED) <= set(region_set.names)
    assert region_set.reference == "occipital"
    assert region_set.name == "default"


def test_load_region_config_resolves_label_names_and_indices(tmp_path, label_atlas, write_config):
    """Names (any case, '-' or '_') and indices map to the same label."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [RIGHT-block]}
          b: {labels: [2, mid_block]}
        """)
    region_set = load_region_config(path)
    assert region_set.regions["a"].labels == (1,)
    assert region_set.regions["b"].labels == (2, 3)


def test_region_defined_twice_is_refused(tmp_path, label_atlas, write_config):
    """A region pasted twice (YAML would keep the second silently) names the key and lines."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [1]}
          b: {labels: [2]}
          a: {labels: [3]}
        """)
    with pytest.raises(ConfigError, match=r"regions\.yaml: the key 'a' appears twice in one "
                                          r"section \(lines \d+ and \d+\)"):
        load_region_config(path)


def test_load_region_config_unknown_label_lists_labels_and_closest(tmp_path, label_atlas,
                                                                   write_config):
    """A misspelt label names the file, region, closest match and the existing labels."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [rigth_block]}
        """)
    with pytest.raises(ConfigError, match=r"regions\.yaml, region 'a': label 'rigth_block' is "
                                          r"not in atlas 'blocks'; closest match: 'right_block'"
                                          r"(.|\n)*1=right_block, 2=left_block, 3=mid_block"):
        load_region_config(path)


def test_load_region_config_unknown_label_in_harvard_oxford(tmp_path):
    """The built-in atlas gives the same kind of message (HO has Left_Amygdala)."""
    path = tmp_path / "r.yaml"
    path.write_text("reference: a\nregions:\n  a: {labels: [Left_Amygdale]}\n")
    with pytest.raises(ConfigError, match="closest match: 'Left_Amygdala'"):
        load_region_config(path)


def test_load_region_config_unknown_key_suggests_closest(tmp_path, label_atlas, write_config):
    """A typo in a region key fails by name, with the key it probably meant."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [1], treshold: 0.3}
        """)
    with pytest.raises(ConfigError, match=r"region 'a': unknown key\(s\) 'treshold' "
                                          r"\(did you mean 'threshold'\?\)"):
        load_region_config(path)


def test_load_region_config_missing_reference_region(tmp_path, label_atlas, write_config):
    """A reference that is not a region is refused, with the closest region name."""
    path = write_config(tmp_path, """\
        reference: occipitl
        regions:
          occipital: {labels: [1]}
        """)
    with pytest.raises(ConfigError, match=r"reference: 'occipitl' is not a region of this "
                                          r"config \(did you mean 'occipital'\?\)"):
        load_region_config(path)


def test_load_region_config_needs_reference_key(tmp_path, label_atlas, write_config):
    """Leaving out the reference key is a schema error naming the key."""
    path = write_config(tmp_path, "regions:\n  a: {labels: [1]}\n")
    with pytest.raises(ConfigError, match="'reference' is a required property"):
        load_region_config(path)


def test_load_region_config_region_needs_one_definition(tmp_path, label_atlas, write_config):
    """Giving both labels and a sphere is refused by name."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [1], sphere: {center: [0, 0, 0], radius: 5}}
        """)
    with pytest.raises(ConfigError, match="exactly one of labels, sphere or mask; got labels, "
                                          "sphere"):
        load_region_config(path)


def test_load_region_config_exclude_unknown_region(tmp_path, label_atlas, write_config):
    """An exclusion naming no region is refused."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {labels: [1], exclude: [bb]}
          b: {labels: [2]}
        """)
    with pytest.raises(ConfigError, match=r"region 'a': exclude names 'bb'"):
        load_region_config(path)


def test_load_region_config_missing_mask_file(tmp_path, label_atlas, write_config):
    """A mask file that does not exist is named with its resolved path."""
    path = write_config(tmp_path, """\
        reference: a
        regions:
          a: {mask: nothere.nii.gz}
        """)
    with pytest.raises(ConfigError, match=r"region 'a': file .*nothere\.nii\.gz not found"):
        load_region_config(path)


def test_load_region_config_bad_region_name(tmp_path, label_atlas, write_config):
    """Region names become column names: capitals are refused."""
    path = write_config(tmp_path, "reference: A\nregions:\n  A: {labels: [1]}\n")
    with pytest.raises(ConfigError, match="does not match"):
        load_region_config(path)


def test_load_region_config_digest_changes_with_content(tmp_path, label_atlas, write_config):
    """Editing a threshold changes the cache key."""
    one = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1]}\n", "one.yaml")
    two = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1], threshold: 0.3}\n",
                       "two.yaml")
    assert load_region_config(one).digest != load_region_config(two).digest


def test_load_region_config_misspelt_labels_key(tmp_path, label_atlas, write_config):
    """'lables' is reported as an unknown key with the fix, not as a missing definition."""
    path = write_config(tmp_path, "reference: a\nregions:\n  a: {lables: [1]}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'lables' \(did you mean 'labels'"):
        load_region_config(path)
