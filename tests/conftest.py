import os

# Qt tests run without a display; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Under pytest-xdist (the README's test command: one worker per core) each worker, and every process a test starts,
# runs torch on one thread: two workers' teams of two OpenMP threads on two cores spin-wait on each other, and a
# test that takes 10 s alone took 144 s (measured). Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

# The files whose tests take minutes (installs, builds, long quality runs) go first, so that under xdist they start
# at once on their own workers and the rest fill in around them, instead of ending the run alone.
LONGEST_FIRST = ("test_desktop_install.py", "test_fresh_clone.py", "test_shapes_model.py", "test_bench.py",
                 "test_readme_commands.py", "test_bundled_quality.py", "test_checkpoint_guided.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)   # stable: the order within a file and among the rest stays
