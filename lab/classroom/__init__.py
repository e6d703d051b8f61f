"""The classroom: the teacher's exercise file (locks, presets, limits) and share links."""
