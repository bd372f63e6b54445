"""Every stage kind the pipeline knows, mapped lazily to the function that runs it.

A kind is ``<pipeline step>/<name>``; the target is ``"module:function"`` taking a
``StageContext``. Keeping the table here (data only) lets ``repro list``/``status`` answer
without importing torch.
"""

from repro.registry import Registry

STAGE_KINDS = Registry("stage kind")

for _kind, _target in {
    # data: every dataset stage's output directory is that dataset's root in its official layout
    "data/synthetic": "repro.data.synthetic:run_stage",
    "data/fetch": "repro.data.fetch:fetch_dataset_stage",
    # models: every model stage's output directory is a Hugging Face checkpoint (+ processor)
    "models/tiny_llm": "repro.models.tiny:build_llm_stage",
    "models/fetch": "repro.models.fetch:fetch_model_stage",
    "models/assemble_llava": "repro.models.llava:assemble_stage",
    "models/tiny_clip": "repro.models.tiny_clip:tiny_clip_stage",
    # train
    "train/text_sft": "repro.train.sft:text_sft_stage",
    "train/vl_adapt": "repro.train.vl_adapt:run_stage",
    "train/dpo": "repro.train.dpo:dpo_stage",
    "train/filter": "repro.train.filter:filter_stage",
    # merge: the paper's fix (claim 7)
    "merge/linear": "repro.merge.stage:linear_stage",
    "merge/task_arithmetic": "repro.merge.stage:task_arithmetic_stage",
    "merge/ties": "repro.merge.stage:ties_stage",
    "merge/dare": "repro.merge.stage:dare_stage",
    # analyse: safety-related layers (claim 5) and objective divergence (claim 6)
    "analyse/layers": "repro.analyse.layers:layers_stage",
    "analyse/objectives": "repro.analyse.objectives:objectives_stage",
    # evaluate
    "evaluate/benchmark": "repro.evaluate.run:benchmark_stage",
    "evaluate/judge": "repro.evaluate.run:judge_stage",
    # report
    "report/table": "repro.report.tables:table_stage",
    "report/sweep": "repro.report.figures:sweep_stage",
}.items():
    STAGE_KINDS.register(_kind, _target)
