"""Sweeps: a TOML file expanded into extraction and chain jobs, run by a launcher (local, Ray, SLURM)."""
