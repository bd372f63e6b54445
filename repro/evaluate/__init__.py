"""Evaluation: backends (generation), benchmarks (YAML), judges, extraction and metrics.

Stages live in ``repro.evaluate.run`` (``benchmark_stage``, ``judge_stage``); importing this
package pulls no torch, transformers or vLLM.
"""
