"""petbp: PET receptor binding-potential studies from BIDS-PET data.

The importable library behind the ``petbp`` command and the Snakemake workflow.
Each stage is a plain function over arrays and tables (see DESIGN.md):
``bids`` and ``frames`` read scans, ``regions`` extracts TACs, ``kinetics`` and
``parametric`` fit reference-tissue models, ``design`` and ``stats`` build the
group analysis, ``report`` writes the HTML report and ``simulate`` makes studies
with known truth.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("petbp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
