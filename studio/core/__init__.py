"""The studio's engine: torch and numpy only, never Qt (tests/core/test_no_qt.py proves it)."""
