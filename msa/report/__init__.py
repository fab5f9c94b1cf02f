"""The paper's tables and reward-curve figure from run directories.

    python -m msa.report outputs/paper                          # every table with a row, Markdown on stdout
    python -m msa.report outputs/paper --paper --out report     # + the paper's numbers; .md, .tex, .csv, PNGs
    python -m msa.report outputs/paper --subset text_conflict   # the metrics on the clips whose words mislead
    python -m msa.report outputs/paper --tables I,III           # strict: those tables complete, else an error

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
dataset. Every table with a row of its own is rendered; a row no run gives, or a cell a run cannot fill
(the run lacks the stage or dataset), is shown ``—`` and listed once under the table, never averaged
over the seeds that have it; ``--tables`` asks for tables strictly, and then any such gap is an error
naming the run. ``--subset`` reads every cell from ``metrics.json``'s subset of that name
(:data:`msa.evaluation.SUBSETS`), missing where a run lacks it. A metric that MMSA itself leaves
undefined (Corr of constant predictions, stored as null) is printed ``nan``.

Modules: :mod:`~msa.report.runs` (find runs, place them in settings), :mod:`~msa.report.tables` (what each
table shows, the paper's numbers, cells over seeds), :mod:`~msa.report.formats` (Markdown, LaTeX, CSV),
:mod:`~msa.report.figure` (Fig. 3), :mod:`~msa.report.build` (build and write a report; the command line).
"""
