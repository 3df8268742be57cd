"""GUI test fixtures (in gui_fixtures, which tests/hostile shares): settings in a temporary folder, a window
factory."""

from gui_fixtures import isolated_settings, make_window  # noqa: F401 -- fixtures
