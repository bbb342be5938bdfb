"""A local Amazon Bedrock Runtime emulator backed by small local Hugging Face models."""

__version__ = "0.1.0"
