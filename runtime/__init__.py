"""The Python side of the sqllm runtime: `from sqllm.runtime import Model`."""

from .model import GenerationStats, Model, perplexity_windows

__all__ = ["GenerationStats", "Model", "perplexity_windows"]
