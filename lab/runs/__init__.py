"""Runs on disk and what is read from them: the RunStore, comparing runs, sweeps, and who may
change a run."""
