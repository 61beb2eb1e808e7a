"""Fault injection: kills, concurrent jobs, damaged files, bad configs, path escapes, the umask."""
