"""Plumbing every layer may use: atomic writes, config dataclasses, errors, locks, devices, safetensors I/O, DDP."""
