# petbp: from a BIDS-PET dataset to regional and voxelwise BP_ND, group statistics and a
# report. Run: snakemake --cores 2 [--config bids_dir=DIR output_dir=OUT]
# (config/README.md: every option; pipeline/paths.py: every output path.)
from snakemake.utils import min_version

from pipeline.config import effective_config, validate_config
from pipeline.yamlfile import check_yaml_files

min_version("8.20")


configfile: "config/config.yaml"


# Refuse a key given twice in a config file (YAML would keep the last silently), then fill
# schema defaults and check every key (messages name the key and the allowed values).
check_yaml_files(workflow.configfiles)
validate_config(config)


report: "workflow/report/workflow.rst"


include: "workflow/rules/inputs.smk"
include: "workflow/rules/group_inputs.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/regions.smk"
include: "workflow/rules/kinetics.smk"
include: "workflow/rules/parametric.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/groups.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/derivatives.smk"


rule all:
    input:
        final_outputs,
    default_target: True


# Snakemake would inspect each input and params function again for every job (inputs.smk).
remember_signatures(workflow.rules)


onsuccess:
    # Loaded images are kept only for this run's steps (pipeline.bids.image_cache): up to
    # 101 MB per 2 mm scan. A later run reads the images again where it needs them.
    import shutil

    shutil.rmtree(OUT / paths.PET_CACHE, ignore_errors=True)
