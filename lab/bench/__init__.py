"""``python -m lab bench``: the engine against a plain PyTorch loop, time to accuracy, and the live UI's cost."""
