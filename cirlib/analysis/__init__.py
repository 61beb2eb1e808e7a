"""Analyses over datasets, features and rankings (benchmark sanity checks, and more to come)."""
