"""petbp: PET receptor binding-potential studies from BIDS-PET data.

The importable library behind the ``petbp`` command and the Snakemake workflow.
Each stage is a plain function over arrays and tables (docs/architecture.md):
``bids`` and ``frames`` read scans, ``regions`` extracts TACs, ``kinetics`` and
``parametric`` fit reference-tissue models, ``design`` and ``stats`` build the
group analysis, ``report`` writes the HTML report and ``simulate`` makes studies
with known truth.
"""

#: The package version (also the distribution's: pyproject.toml reads it from here), kept
#: as a literal so ``petbp --version`` needs no package metadata lookup.
__version__ = "0.1.0"

__all__ = ["__version__"]
