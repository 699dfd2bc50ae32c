"""Pretrained encoders that ship inside PyPI packages in a non-transformers format."""
