"""The paper's tables and reward-curve figure from run directories.

    python -m msa.report outputs/paper                       # every table the runs allow, Markdown on stdout
    python -m msa.report outputs/paper --paper --out report  # + the paper's numbers; .md, .tex, .csv, PNGs

Arguments are run directories (``metrics.json`` + the run's config) or folders holding them at any
depth (a sweep, a study). Each run is placed in a *setting* by its config, never by its folder name:

=================  ==================================================================================
setting            the run
=================  ==================================================================================
``zero_shot``      ``stage=eval`` without ``init_from`` (the base model, DC prompt)
``sft_dc``         ``sft`` in ``stage.run`` with ``sft.answer=dc`` (cold-start SFT on the CoT)
``sft_score``      ``sft`` with ``sft.answer=score`` (the direct-score baseline)
``grpo``           ``grpo`` with ``hint=true hard=true`` (MSA-Thinker, "w/ Hint", "w/ Hard")
``grpo_no_hint``   ``grpo`` with ``hint=false`` (standard GRPO)
``grpo_no_hard``   ``grpo`` with ``hard=false`` (hard prompts dropped)
=================  ==================================================================================

The metrics of a setting are the test pass its stage wrote (``metrics.json[stage][dataset]``); runs of
one setting that differ in ``seed`` are shown as mean +- sample std (ddof 1). Tables I/II take every
dataset the runs were tested on (SIMS-family columns in I, MOSI-family in II); III-V the training
dataset. A run that lacks a stage or dataset its table needs is an error that names the run, never a
blank cell. A metric that MMSA itself leaves undefined (Corr of constant predictions, stored as null)
is printed ``nan``.

Modules: :mod:`~msa.report.runs` (find runs, place them in settings), :mod:`~msa.report.tables` (what each
table shows, the paper's numbers, cells over seeds), :mod:`~msa.report.formats` (Markdown, LaTeX, CSV),
:mod:`~msa.report.figure` (Fig. 3), :mod:`~msa.report.build` (build and write a report; the command line).
"""
