"""Reproducibility kit for "How Does Vision-Language Adaptation Impact the Safety of VLMs?" (ICLR 2025)."""

__version__ = "0.1.0"
