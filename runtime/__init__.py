"""The Python side of the sqllm runtime."""
