"""Everything the cot stage (:mod:`msa.stages.cot`) calls: teachers, filters, the judge, the records.

    rule_teacher.py    RuleTeacher: DC chains from the unimodal labels (no model), seeded per clip
    model_teachers.py  the Teacher interface (generate, judge), HFTeacher, VLLMTeacher, build_teacher
    filters.py         format, polarity consistency, plausibility (stance lexicon): Verdict, evaluate
    judge_prompt.py    the judge's question (pure text; shared by judge.py and model_teachers.py)
    judge.py           the judge's collator and strict yes/no verdict; Judge, build_judge
    batches.py         the batches a teacher takes: metadata rows or collated media
    records.py         one clip's samples ranked by the filters, and its JSONL record

Control flows one way: the stage builds a teacher (and a judge), feeds it batches, and turns its
answers into records. Nothing here reads the run's whole config: the stage passes the nodes
(``teacher``, ``cot.judge``, ``data``) and values it needs.
"""
