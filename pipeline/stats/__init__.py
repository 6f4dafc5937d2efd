"""Group statistics: paired contrasts, correlations with scores, null drift, voxelwise maps.

Modules: :mod:`~pipeline.stats.regional` (paired contrasts per region),
:mod:`~pipeline.stats.correlations` (activation vs scores), :mod:`~pipeline.stats.drift`
(null drift of within-scan designs, by simulation of the study's protocol),
:mod:`~pipeline.stats.voxelwise` (group maps with nilearn) and
:mod:`~pipeline.stats.tables` (the ``write_*`` steps the workflow rules call).
"""

__all__: list[str] = []
