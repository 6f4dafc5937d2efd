"""Group statistics: paired contrasts, correlations with scores, null drift, voxelwise maps.

Modules: :mod:`~pipeline.stats.regional` (paired values per participant and region),
:mod:`~pipeline.stats.contrast_tests` (their group tests, FDR and the drift guard),
:mod:`~pipeline.stats.correlations` (activation vs scores), :mod:`~pipeline.stats.drift`
and :mod:`~pipeline.stats.drift_pool` (null drift of within-scan designs, from each scan's
release-free TACs; :mod:`~pipeline.stats.drift_regions`, a drift blended across regions,
is measured in ``benchmarks/bench_drift.py`` and not used by the workflow),
:mod:`~pipeline.stats.voxelwise` (group maps with nilearn) and
:mod:`~pipeline.stats.tables` (the ``write_*`` steps the workflow rules call).
"""

__all__: list[str] = []
