"""The studio window's parts: actions, the centre (error banner, previews, timeline), docks, menus, toolbar and
status bar, built in that order as Qt's mainwindows/application example builds a window.

``build(window)`` sets each part as an attribute of the window (``window.generate_action``,
``window.sampler_panel``, ...), as a Designer form's ``setupUi`` would; what the parts do stays in the window.
Every dock, toolbar and widget a test or saved layout looks for has its objectName here.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton, QAbstractScrollArea, QApplication, QComboBox, QDockWidget, QFrame, QLabel, QPushButton,
    QScrollArea, QSizePolicy, QSplitter, QStackedWidget, QStyle, QToolBar, QVBoxLayout, QWidget,
)

from .error_banner import ErrorBanner
from .export_actions import ExportActions
from .panels.model_panel import ModelPanel
from .panels.plots_panel import PlotsPanel
from .panels.sampler_panel import SamplerPanel
from .panels.seed_panel import SeedPanel
from .panels.study_panel import StudyPanel
from .views.focus_view import FocusView
from .views.preview_pane import PreviewPane
from .views.progress_bar import ProgressBar
from .views.timeline import Timeline

EMPTY_STATE_TEXT = ("<h2>No model loaded</h2><p>Open a checkpoint with <b>File ▸ Open checkpoint or PNG…</b> "
                    "(Ctrl+O), pick one in the Model panel, or drop a checkpoint file, a diffusers folder or a PNG "
                    "the studio exported onto this window.</p>")
LOADING_STATE_TEXT = "<h2>Opening {name}…</h2><p>The model appears here once it is open; Esc cancels.</p>"


def build(window) -> None:
    create_actions(window)
    create_central(window)
    create_docks(window)
    create_menus(window)
    create_toolbar(window)
    create_status_bar(window)


# --- actions -------------------------------------------------------------------------------------------------------
def _action(window, name: str, text: str, slot, shortcuts=(), tip: str = "") -> QAction:
    action = QAction(text, window)
    action.setObjectName(name)
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)   # shortcuts work even when the action's menu is closed
    return action


def create_actions(window) -> None:
    w = window
    w.open_action = _action(w, "openCheckpointAction", "&Open checkpoint or PNG…", w.open_checkpoint_dialog,
                            [QKeySequence.StandardKey.Open],
                            "Open a checkpoint file, or a PNG the studio exported to make it again (Ctrl+O)")
    w.open_folder_action = _action(w, "openFolderAction", "Open diffusers &folder…", w.open_folder_dialog,
                                   tip="Open a diffusers model or pipeline folder")
    w.exports = ExportActions(w)
    w.quit_action = _action(w, "quitAction", "&Quit", w.close, [QKeySequence.StandardKey.Quit])
    w.generate_action = _action(w, "generateAction", "&Generate", w.generate, ["Ctrl+Return", "Ctrl+Enter"],
                                "Sample a batch (Ctrl+Enter)")
    w.cancel_action = _action(w, "cancelAction", "&Cancel", w.cancel, ["Esc"],
                              "Stop the run after the model call in progress; the steps done stay (Esc)")
    w.grid_action = _action(w, "gridAction", "X/Y &grid…", lambda: _open_grid(w),
                            tip="Final samples over two settings, the same noise in every cell")
    w.branch_action = _action(w, "branchAction", "&Branch from here…", lambda: w.run_list.branch_from_here(),
                              tip="Finish the shown run from the timeline's step under new settings")
    w.compare_action = _action(w, "compareAction", "Co&mpare runs", lambda: w.run_list.compare_selected(),
                               tip="Compare the 2 to 4 runs selected in the Runs dock")
    w.save_runs_action = _action(w, "saveRunListAction", "Save run &list…", lambda: w.run_list.save(),
                                 tip="Save the Runs dock's runs of the open model to one file")
    w.open_runs_action = _action(w, "openRunListAction", "Open run l&ist…", lambda: w.run_list.open(),
                                 tip="Add the runs of a saved run list to the Runs dock")
    _create_timeline_actions(w)
    w.reset_layout_action = _action(w, "resetLayoutAction", "&Reset layout", w.reset_layout,
                                    tip="Put every panel back where it started")
    w.about_action = _action(w, "aboutAction", "&About Sampling Studio", w.about)


def _open_grid(window) -> None:
    from .grid_dialog import open_grid_dialog

    open_grid_dialog(window)


def _create_timeline_actions(w) -> None:
    """Play and step through the run; the timeline exists only later, so each action looks it up when used."""
    w.play_action = _action(w, "playAction", "&Play / pause", lambda: play_or_press(w), ["Space"],
                            "Play the steps as a movie (Space)")
    w.back_action = _action(w, "stepBackAction", "Step &back", lambda: w.timeline.step_back(), ["Left"],
                            "Show the step before (Left)")
    w.forward_action = _action(w, "stepForwardAction", "Step &forward", lambda: w.timeline.step_forward(),
                               ["Right"], "Show the step after (Right)")
    w.first_action = _action(w, "firstStepAction", "&First step", lambda: w.timeline.first(), ["Home"],
                             "Show step 0, x_T, the starting noise (Home)")
    w.last_action = _action(w, "lastStepAction", "&Last step", lambda: w.timeline.last(), ["End"],
                            "Show the last step (End)")


def play_or_press(window) -> None:
    """Space plays/pauses the timeline, except that a focused button or list still gets its own Space
    (keyboard users press buttons and open combo boxes with it)."""
    focus = QApplication.focusWidget()
    if isinstance(focus, QAbstractButton) and focus is not window.timeline.play_button and focus.isEnabled():
        focus.animateClick()
    elif isinstance(focus, QComboBox):
        focus.showPopup()
    else:
        window.timeline.toggle_play()


# --- the centre ----------------------------------------------------------------------------------------------------
def create_central(window) -> None:
    window.error_banner = ErrorBanner()
    window.preview_splitter = _previews(window)
    window.empty_state = QLabel(EMPTY_STATE_TEXT)
    window.empty_state.setObjectName("emptyState")
    window.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
    window.empty_state.setWordWrap(True)
    window.centre_stack = QStackedWidget()
    window.centre_stack.addWidget(window.empty_state)
    window.centre_stack.addWidget(window.preview_splitter)
    window.timeline = Timeline()
    # right-click the timeline: branch the shown run from the step it points at
    window.timeline.slider.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
    window.timeline.slider.addAction(window.branch_action)
    centre = QWidget()
    box = QVBoxLayout(centre)
    box.setContentsMargins(4, 4, 4, 0)
    box.addWidget(window.error_banner)
    box.addWidget(window.centre_stack, 1)
    box.addWidget(window.timeline)
    window.setCentralWidget(centre)


def _previews(window) -> QSplitter:
    """The batch's x_t and x0_pred grids side by side, the focused sample under them."""
    window.preview_xt = PreviewPane("x_t, the noisy sample", "The batch's x_t: the sample after the step shown. "
                                    "Click a tile to look at it closely below.")
    window.preview_xt.setObjectName("previewXt")
    window.preview_xt.setAccessibleName("x_t of the batch")
    window.preview_x0 = PreviewPane("x0_pred, the model's guess of the clean sample",
                                    "The batch's predicted x0: where the model thinks each sample is heading. "
                                    "Click a tile to look at it closely below.")
    window.preview_x0.setObjectName("previewX0")
    window.preview_x0.setAccessibleName("Predicted x0 of the batch")
    window.focus_view = FocusView()
    # a vector model's two scatters show one plane: the model's data range and where the run starts, zoomed together
    window.preview_x0.scatter.follow(window.preview_xt.scatter)
    window.model_changed.connect(lambda card: _show_data_range(window, card))
    grids = QSplitter(Qt.Orientation.Horizontal)
    grids.setObjectName("gridsSplitter")
    grids.addWidget(window.preview_xt)
    grids.addWidget(window.preview_x0)
    splitter = QSplitter(Qt.Orientation.Vertical)
    splitter.setObjectName("previewSplitter")
    splitter.addWidget(grids)
    splitter.addWidget(window.focus_view)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 2)
    return splitter


def _show_data_range(window, card) -> None:
    vector = card is not None and card.data_kind == "vector"
    for pane in (window.preview_xt, window.preview_x0):
        pane.scatter.set_data_range(card.value_range if vector else None)


# --- docks and menus -----------------------------------------------------------------------------------------------
DOCK_MIN_HEIGHT = 80   # a panel's dock may shrink to this; its controls scroll (a laptop screen is 720-800 high)


class PanelScroller(QScrollArea):
    """A dock's panel in a vertical scroll area: the dock can be shorter than the panel, whose controls stay
    reachable by scrolling, and a squeezed dock no longer overlaps the next or pushes the window taller than the
    screen. It asks for the panel's own width (plus a scroll bar), so the panel is never cut at the side."""

    def __init__(self, panel: QWidget, name: str, no_taller: bool = False):
        """``no_taller``: the dock never grows past the panel's height, leaving a tall column's room to others."""
        super().__init__()
        self._no_taller = no_taller
        self.setObjectName(name)
        self.setWidget(panel)
        self.setWidgetResizable(True)   # the panel takes the area's width, and its height for that width
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        if no_taller:
            panel.installEventFilter(self)   # its rows may change (options shown or hidden): follow its height
            self._cap_height()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 -- Qt's name
        if self._no_taller and watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._cap_height()
        return super().eventFilter(watched, event)

    def _cap_height(self) -> None:
        self.setMaximumHeight(self.widget().sizeHint().height() + 2 * self.frameWidth())

    def _scroll_bar_width(self) -> int:
        return self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)

    def sizeHint(self) -> QSize:  # noqa: N802 -- Qt's name
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self._scroll_bar_width(), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 -- Qt's name
        width = self.widget().minimumSizeHint().width() + self._scroll_bar_width()
        return QSize(width, min(DOCK_MIN_HEIGHT, self.widget().minimumSizeHint().height()))


def _dock(window, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll_name: str = "",
          no_taller: bool = False) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(name)   # saveState/restoreState find docks by objectName
    dock.setWidget(PanelScroller(widget, scroll_name, no_taller) if scroll_name else widget)
    window.addDockWidget(area, dock)
    return dock


def create_docks(window) -> None:
    w = window
    w.model_panel = ModelPanel()
    w.sampler_panel = SamplerPanel()
    w.seed_panel = SeedPanel()
    w.plots_panel = PlotsPanel()
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    w.model_dock = _dock(w, "modelDock", "Model", w.model_panel, left, "modelScroll")
    # a tall left column's extra room goes to the Model panel (its list and card), not to empty space under these
    w.sampler_dock = _dock(w, "samplerDock", "Sampler", w.sampler_panel, left, "samplerScroll", no_taller=True)
    w.seed_dock = _dock(w, "seedDock", "Seed", w.seed_panel, left, "seedScroll", no_taller=True)
    w.plots_dock = _dock(w, "plotsDock", "Plots", w.plots_panel, right)   # its plots shrink (and collapse) instead
    w.study_panel = StudyPanel()
    w.study_dock = _dock(w, "studyDock", "Study", w.study_panel, right, "studyScroll")
    from .run_list_dock import RunListPanel

    w.run_list_panel = RunListPanel()
    w.run_list_dock = _dock(w, "runListDock", "Runs", w.run_list_panel, right)
    w.tabifyDockWidget(w.plots_dock, w.run_list_dock)
    w.tabifyDockWidget(w.plots_dock, w.study_dock)   # a tab behind the plots: the run's plots show first
    w.plots_dock.raise_()
    w.resizeDocks([w.model_dock, w.plots_dock], [330, 300], Qt.Orientation.Horizontal)
    # the model list asks for the rows it has, not a fixed 192 pixels: on a short screen the card shows with it
    w.model_panel.model_list.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
    # of a short left column, the Sampler panel (the run's settings) gets the most
    w.resizeDocks([w.model_dock, w.sampler_dock, w.seed_dock], [300, 340, 110], Qt.Orientation.Vertical)


def docks(window) -> tuple[QDockWidget, ...]:
    return (window.model_dock, window.sampler_dock, window.seed_dock, window.plots_dock, window.study_dock,
            window.run_list_dock)


def create_menus(window) -> None:
    w = window
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.open_action, w.open_folder_action])
    file_menu.addSeparator()
    file_menu.addActions(w.exports.actions)
    file_menu.addSeparator()
    file_menu.addActions([w.save_runs_action, w.open_runs_action])
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    run_menu = bar.addMenu("&Run")
    run_menu.addActions([w.generate_action, w.cancel_action])
    run_menu.addSeparator()
    run_menu.addActions([w.grid_action, w.branch_action, w.compare_action])
    run_menu.addSeparator()
    run_menu.addActions([w.play_action, w.back_action, w.forward_action, w.first_action, w.last_action])
    view_menu = bar.addMenu("&View")
    for dock in docks(w):
        view_menu.addAction(dock.toggleViewAction())
    view_menu.addSeparator()
    view_menu.addAction(w.reset_layout_action)
    bar.addMenu("&Help").addAction(w.about_action)


# --- toolbar and status bar ----------------------------------------------------------------------------------------
def _button(name: str, text: str, action: QAction, accessible: str) -> QPushButton:
    """A push button that triggers ``action`` and mirrors its enabled state and tooltip."""
    button = QPushButton(text)
    button.setObjectName(name)
    button.setAccessibleName(accessible)
    button.setToolTip(action.toolTip())
    button.clicked.connect(action.trigger)
    action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
    return button


def create_toolbar(window) -> None:
    w = window
    toolbar = QToolBar("Run")
    toolbar.setObjectName("runToolBar")
    toolbar.setIconSize(QSize(18, 18))
    w.addToolBar(toolbar)
    w.open_button = _button("openButton", "Open…", w.open_action, "Open a checkpoint")
    w.generate_button = _button("generateButton", "Generate", w.generate_action, "Generate")
    w.generate_button.setDefault(True)
    w.generate_button.setStyleSheet("QPushButton#generateButton { font-weight: bold; padding: 4px 18px; }")
    w.cancel_button = _button("cancelButton", "Cancel", w.cancel_action, "Cancel the run")
    for button in (w.open_button, w.generate_button, w.cancel_button):
        toolbar.addWidget(button)
    toolbar.addSeparator()
    w.export_button = w.exports.toolbar_button()
    toolbar.addWidget(w.export_button)
    w.run_state_label = QLabel()
    w.run_state_label.setObjectName("runStateLabel")
    w.run_state_label.setContentsMargins(12, 0, 0, 0)
    toolbar.addWidget(w.run_state_label)


def create_status_bar(window) -> None:
    status = window.statusBar()
    window.status_label = QLabel("ready")
    window.status_label.setObjectName("runStatusLabel")
    # long messages are cut, not allowed to push the device and progress off the bar
    window.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    window.device_label = QLabel()
    window.device_label.setObjectName("deviceLabel")
    bar = window.progress_bar = ProgressBar()
    bar.setObjectName("progressBar")
    bar.setAccessibleName("Run progress")
    bar.setMaximumWidth(220)
    bar.setRange(0, 1)
    bar.setValue(0)
    bar.setFormat("%v/%m steps")
    status.addWidget(window.status_label, 1)
    status.addPermanentWidget(window.device_label)
    status.addPermanentWidget(bar)
