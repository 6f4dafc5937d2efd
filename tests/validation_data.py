"""Where the external reference data are: ``../shared/validation`` beside the checkout.

Tests that read them import :data:`VALIDATION` and skip, with a reason, when it is absent.
"""

from __future__ import annotations

from pathlib import Path

#: The validation folder, ``../shared/validation`` relative to the repository root.
VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"
INDEPENDENT_SIM = VALIDATION / "independent_sim"
