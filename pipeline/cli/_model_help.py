"""Help texts about the kinetic models for ``petbp fit`` and ``petbp map`` (private).

Both read :data:`pipeline.kinetics.MODELS`, so a new model shows up in every help text.
"""

from __future__ import annotations

__all__ = ["model_help", "models_taking"]


def models_taking(option: str) -> str:
    """Comma-separated names of the models that take ``option``."""
    from pipeline.kinetics import MODELS

    return ", ".join(name for name, spec in MODELS.items() if spec.takes(option))


def model_help() -> str:
    """The ``--model`` help: each model with what it is and its citation."""
    from pipeline.kinetics import MODELS

    return "; ".join(f"{name}: {spec.title} ({spec.citation})" for name, spec in MODELS.items())
