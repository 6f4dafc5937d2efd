"""The administration protocol from BIDS-PET sidecars: Kbol, units, gaps, bad values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.protocol import read_protocol
from tests.validation_data import INDEPENDENT_SIM as INDEPENDENT


def _bolus_infusion(**extra):
    side = {"ModeOfAdministration": "bolus-infusion", "InjectedRadioactivity": 400.0,
            "InjectedRadioactivityUnits": "MBq", "InfusionRadioactivity": 200.0,
            "InjectedVolume": 40.0, "InfusionSpeed": 20.0 / 5400.0,
            "InfusionSpeedUnits": "mL/s", "InfusionStart": 0}
    side.update(extra)
    return side


def test_read_protocol_kbol_from_doses_volume_and_speed():
    """Half the dose infused over 90 min: Kbol = 90 min (bolus / infusion rate)."""
    p = read_protocol(_bolus_infusion())
    assert p.kbol == pytest.approx(90.0)
    assert p.infusion_duration == pytest.approx(90.0)
    assert p.bolus_mbq == pytest.approx(200.0)
    assert "Kbol 90.0 min" in p.describe()


def test_read_protocol_units_and_speed_per_minute():
    """mCi and mL/min give the same Kbol (a third of the dose infused over 60 min: 120 min)."""
    p = read_protocol(_bolus_infusion(InjectedRadioactivity=12.0,
                                      InjectedRadioactivityUnits="mCi",
                                      InfusionRadioactivity=4.0, InjectedVolume=30.0,
                                      InfusionSpeed=10.0 / 60.0, InfusionSpeedUnits="mL/min"))
    assert p.injected_mbq == pytest.approx(12 * 37.0)
    assert p.infusion_duration == pytest.approx(60.0)
    assert p.kbol == pytest.approx(8 * 37.0 / (4 * 37.0 / 60.0))


def test_read_protocol_bolus_and_infusion_only():
    assert read_protocol({"ModeOfAdministration": "bolus"}).kbol == np.inf
    assert read_protocol({"ModeOfAdministration": "infusion",
                          "InjectedRadioactivity": 300}).kbol == 0.0


def test_read_protocol_missing_fields_give_notes_not_errors():
    p = read_protocol(_bolus_infusion(InfusionSpeed=None))
    assert not p.known and "InfusionSpeed" in " ".join(p.notes)
    assert read_protocol({}).mode == "unknown"


@pytest.mark.parametrize(("change", "message"), [
    ({"InfusionRadioactivity": 500.0}, "exceeds InjectedRadioactivity"),
    ({"InjectedRadioactivity": "a lot"}, "InjectedRadioactivity must be a number"),
    ({"InjectedRadioactivityUnits": "furlongs"}, "not a unit petbp knows"),
    ({"InfusionSpeedUnits": "mL"}, "not a volume or an activity per time"),
    ({"InfusionStart": -5}, "InfusionStart must be a finite number >= 0"),
])
def test_read_protocol_refuses_bad_values(change, message):
    with pytest.raises(InputError, match=message):
        read_protocol(_bolus_infusion(**change), "sub-01_pet.json")


@pytest.mark.skipif(not INDEPENDENT.is_dir(), reason="../shared/validation not present")
@pytest.mark.parametrize(("study", "kbol"), [("kbol90", 90.0), ("kbol60", 60.0)])
def test_read_protocol_of_the_independent_simulator(study, kbol):
    """The independent simulator's sidecars say Kbol 90 and 60 min (its README)."""
    for path in sorted((INDEPENDENT / study / "tacs").glob("*_pet.json")):
        p = read_protocol(json.loads(path.read_text()), path)
        assert p.kbol == pytest.approx(kbol, rel=0.005)  # speeds are rounded in the sidecars


def test_read_protocol_activity_rate_and_scan_end_fallback():
    """An infusion speed in MBq/min gives the duration directly; without volume and speed
    the infusion is taken to last until the scan's end (with a note)."""
    p = read_protocol(_bolus_infusion(InfusionSpeed=200.0 / 90.0, InfusionSpeedUnits="MBq/min"))
    assert p.kbol == pytest.approx(90.0)
    p = read_protocol(_bolus_infusion(InfusionSpeed=None, InjectedVolume=None), scan_end=60.0)
    assert p.kbol == pytest.approx(60.0)
    assert "until the end of the scan" in " ".join(p.notes)
