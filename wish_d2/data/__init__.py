"""Datasets, narration parsing, mappers and the synthetic benchmark. Importing registers built-in splits."""
