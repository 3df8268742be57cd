"""``python -m studio.bench``: how close the studio comes to the network's own speed.

Each section measures the studio against a reference side by side in one process run, interleaving the two
so a busy machine slows both alike, and reports medians as ratios with each one's goal beside them. The
table prints to the terminal and, with ``--json PATH``, is written as JSON. Nothing here is a test: tests
only check that the bench runs and writes a well-formed table.
"""
