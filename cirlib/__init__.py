"""CIR Lab: composed image retrieval research and teaching library."""

__version__ = "0.1.0"
