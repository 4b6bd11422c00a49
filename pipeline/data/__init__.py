"""Commands over tracked data: `checkout` (workspace from the lock), `add` (raw data), `gc`, and
the managed `.gitignore` block.
"""
