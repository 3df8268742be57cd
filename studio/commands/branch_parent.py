"""Where a `studio sample` branch finds its parent.

- ``ParentFolder``: ``--branch-from RUN_DIR --at-step K``, a run written with ``--trajectory``: its run.json (every
  setting and seed) and two frames of its trajectory.npz (x_T and the x_t after step K), read with bounded headers.
  The branch keeps the parent's samples and batches: batch b of the branch continues batch b of the parent, in
  the same rows per model call, so with the parent's own settings it ends on the parent's samples, bit for bit.
- ``ParentRecipe``: ``--from-png`` of a branch's PNG. Its recipe carries the parent sample's recipe and K; the
  parent's sample is made again for K steps (in the rows its recipe records, so its x_t comes back bit for bit)
  and the branch goes on from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.errors import CheckpointError, SettingsError

RUN_JSON_LIMIT = 64 * 2**20   # a run.json of a million samples is a few tens of MB; more is not one of ours
# what a whole job's run.json says beyond one engine run's record
_JOB_KEYS = ("command", "num_samples", "seeds", "class_labels", "files", "distributed", "from_png", "branch",
             "settings")


def _at_step_hint(steps: int) -> str:
    return f"pick --at-step from 0 to {steps - 1}"


@dataclass
class ParentFolder:
    """A parent run folder: its run.json (``record``) and the step to branch from."""

    folder: Path
    record: dict
    at_step: int
    _frames: np.ndarray | None = None   # (2, N, *shape): x_T and x_t after step at_step

    @classmethod
    def read(cls, folder: str, at_step: int | None) -> "ParentFolder":
        from studio.core.settings import RunSettings

        path = Path(folder)
        if at_step is None:
            raise SettingsError("--branch-from needs --at-step K: the step of the parent run to branch from")
        if not path.is_dir():
            raise SettingsError(f"--branch-from {folder}: no such folder (give a folder `studio sample "
                                "--trajectory` wrote)")
        record = _read_run_json(path / "run.json")
        if not (path / "trajectory.npz").is_file():
            raise SettingsError(f"{path} has no trajectory.npz: branching needs the parent's steps; make the "
                                "parent run again with --trajectory")
        if "branch" in record:
            raise SettingsError(f"{path} is itself a branch; branch from its parent run instead "
                                f"({(record['branch'].get('parent') or {}).get('run', 'its folder')})")
        try:
            RunSettings.from_dict(record["settings"])
            steps = len(record["timesteps"])
            seeds = [int(s) for s in record["seeds"]]
        except (KeyError, TypeError, ValueError, SettingsError) as exc:
            raise SettingsError(f"{path / 'run.json'} is damaged ({exc})") from None
        if not seeds or len(seeds) != record.get("num_samples", len(seeds)):
            raise SettingsError(f"{path / 'run.json'} is damaged (its seeds do not match its num_samples)")
        if isinstance(at_step, bool) or not 0 <= at_step < steps:
            raise SettingsError(f"--at-step {at_step}: the parent run has {steps} steps and step {steps} is its "
                                f"end, nothing is left to branch; {_at_step_hint(steps)}")
        return cls(path, record, at_step)

    @property
    def settings(self):
        """The parent's RunSettings as run.json records them (the resolved sampler, the network it ran)."""
        from studio.core.settings import RunSettings

        return RunSettings.from_dict(self.record["settings"])

    @property
    def num_samples(self) -> int:
        return len(self.record["seeds"])

    def check_model(self, card, source: str) -> None:
        wanted = (self.record.get("model") or {}).get("sha256") or ""
        if wanted and wanted != card.sha256:
            raise CheckpointError(f"{self.folder} was made with another model (sha256 {wanted[:12]}) than {source} "
                                  f"(sha256 {card.sha256[:12]}): a branch goes on with its parent's model")

    def frames(self, data_shape) -> np.ndarray:
        """x_T and the x_t after step ``at_step`` of every sample, (2, N, *data_shape)."""
        from studio.core.export.npz_frames import read_npz_frames

        if self._frames is None:
            expected = (len(self.record["timesteps"]) + 1, self.num_samples, *data_shape)
            self._frames = read_npz_frames(self.folder / "trajectory.npz", "x_t", [0, self.at_step], expected)
        return self._frames

    def start_for(self, job, indices: list[int]):
        """The BranchStart of the parent's samples ``indices`` (one of its batches)."""
        from studio.core.branch import BranchStart

        frames = self.frames(job.card.data_shape)
        where = np.asarray(indices)
        unit = self.unit_record(indices)
        return BranchStart(self.settings.replace(batch_size=len(indices)), tuple(unit["seeds"]), self.at_step,
                           _tensor(frames[1, where]), _tensor(frames[0, where]),
                           parent={"run": str(self.folder.resolve()), "record": unit})

    def unit_record(self, indices: list[int]) -> dict:
        """The engine record of the parent's batch ``indices``, as that batch's PNG recipes were made from."""
        record = self.record
        unit = {key: value for key, value in record.items() if key not in _JOB_KEYS}
        unit["settings"] = {**record["settings"], "batch_size": len(indices)}
        unit["seeds"] = [int(record["seeds"][i]) for i in indices]
        labels = record.get("class_labels")
        unit["class_labels"] = None if labels is None else [int(labels[i]) for i in indices]
        return unit

    def describe(self) -> dict:
        """What the branch's run.json says of its parent."""
        return {"run": str(self.folder.resolve()), "sha256": (self.record.get("model") or {}).get("sha256")}


@dataclass
class ParentRecipe:
    """A branch PNG's parent: its sample's recipe, made again for ``at_step`` steps (studio.core.branch_recipe)."""

    recipe: dict
    at_step: int

    @classmethod
    def of(cls, branch_recipe: dict, source: str) -> "ParentRecipe":
        from studio.core.branch_recipe import parent_recipe_of

        return cls(*parent_recipe_of(branch_recipe, source))

    def start_for(self, job, indices: list[int]):
        from studio.core.branch_recipe import remake_parent

        if len(indices) != 1:
            raise SettingsError("a branch PNG's recipe makes its one sample again: leave out --num-samples/--batch")
        return remake_parent(job.model, self.recipe, self.at_step, device=job.settings.device,
                             classifier=job.classifier)

    def describe(self) -> dict:
        return {"recipe": self.recipe}


def _record_settings(record: dict):
    from studio.core.settings import RunSettings

    return RunSettings.from_dict(record["settings"])


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _read_run_json(path: Path) -> dict:
    if not path.is_file():
        raise SettingsError(f"{path.parent} has no run.json: give a folder `studio sample --trajectory` wrote")
    if path.stat().st_size > RUN_JSON_LIMIT:
        raise SettingsError(f"{path} is larger than any run.json the studio writes ({path.stat().st_size} bytes)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SettingsError(f"{path} is damaged (not valid JSON: {exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise SettingsError(f"{path} is not a studio run record")
    return record


def branch_timesteps(source, job) -> np.ndarray:
    """The timesteps the branch's own steps visit (its plan against a parent of one sample)."""
    import torch

    from studio.core.branch import BranchStart, plan_branch

    shape = tuple(job.card.data_shape)
    if isinstance(source, ParentFolder):
        parent_settings = source.settings.replace(batch_size=1)
    else:
        parent_settings = _record_settings(source.recipe)
    start = BranchStart(parent_settings, (parent_settings.seed,), source.at_step, torch.zeros(1, *shape),
                        torch.zeros(1, *shape))
    sampler = job.settings.sampler.resolve(job.card)
    return plan_branch(start, sampler, job.card, job.model.schedule, 1).timesteps
