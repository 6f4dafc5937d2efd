# output_dir is a BIDS-derivatives dataset: its dataset_description.json (pipeline.derivatives).

localrules:
    dataset_description,


rule dataset_description:
    # Provenance, not a result: it runs after any group output was remade (its inputs) and
    # records the command and config checksum of that run. Neither is a params trigger, so
    # an unchanged rerun stays idle (config/README.md, "Where results land").
    input:
        final_outputs_but_description,
    output:
        description=out(paths.DATASET_DESCRIPTION),
        bidsignore=out(".bidsignore"),
    params:
        sources=source_datasets(),
    log:
        log_path("dataset_description.log"),
    run:
        from pipeline.derivatives import write_bidsignore, write_dataset_description

        with log_to(log[0]):
            write_dataset_description(output.description, sources=params.sources,
                                      command=sys.argv, config=dict(config))
            write_bidsignore(output.bidsignore)
