"""Where the external reference data are: ``../shared/validation`` beside the checkout.

Tests that read them import :data:`VALIDATION` and skip, with a reason, when it is absent.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = (_ROOT.parent / "shared" / "validation", Path("/work/shared/validation"))

#: The validation folder (the first candidate that exists; the first one otherwise).
VALIDATION = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
INDEPENDENT_SIM = VALIDATION / "independent_sim"
