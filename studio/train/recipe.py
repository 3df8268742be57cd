"""A training run's recipe: everything that decides the trained weights, as one JSON-able record.

The recipe is stored in the training state, so ``--resume`` continues the very same run; only the total number
of steps may change on resume. Defaults depend on the data and the network (``default_architecture``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from ..core.checks import is_number, require_choice, require_int, require_number
from ..core.errors import SettingsError
from ..core.models.networks import ARCHITECTURES, build_network
from ..core.prediction import normalise_prediction_type
from ..core.schedules import ScheduleConfig
from .data import TrainData


@dataclass(frozen=True)
class TrainRecipe:
    data: str                                   # digits | toy2d | a folder (absolute path)
    arch: str = ""                              # unet | mlp | classifier; "" = the data's default
    arch_config: dict = field(default_factory=dict)   # overrides of the default network config
    image_size: int | None = None               # folder data (default 32) or digits (default 8)
    color: str = "auto"
    conditional: bool = True                    # use the data's class labels when it has them
    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 200                           # linear learning-rate warm-up, in steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    class_dropout: float = 0.1                  # probability of training on the null class (for CFG)
    seed: int = 0
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    learn_sigma: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if self.arch:
            require_choice("--arch", self.arch, ARCHITECTURES)
        if not isinstance(self.arch_config, dict):
            raise SettingsError("--arch-config must be a JSON object")
        require_int("--steps", self.steps, 1)
        require_int("--batch-size", self.batch_size, 1)
        require_int("--warmup", self.warmup, 0)
        require_int("--seed", self.seed, 0)
        if not (is_number(self.lr) and 0 < self.lr <= 1):   # open at 0: a zero rate never moves the weights
            raise SettingsError(f"--lr must be a number in (0, 1], got {self.lr!r}")
        require_number("--weight-decay", self.weight_decay, 0.0, 1.0)
        require_number("--grad-clip", self.grad_clip, 0.0, 1e6)
        require_number("--ema-decay", self.ema_decay, 0.0, 1.0)
        if self.ema_decay >= 1.0:
            raise SettingsError(f"--ema-decay must be below 1, got {self.ema_decay}")
        require_number("--class-dropout", self.class_dropout, 0.0, 1.0)
        if self.class_dropout >= 1.0:
            raise SettingsError(f"--class-dropout must be below 1 (else no class is ever seen), got {self.class_dropout}")
        object.__setattr__(self, "prediction_type", normalise_prediction_type(self.prediction_type))
        self.schedule_config()

    def schedule_config(self) -> ScheduleConfig:
        return ScheduleConfig(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                              beta_start=self.beta_start, beta_end=self.beta_end)

    def replace(self, **changes) -> "TrainRecipe":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainRecipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    # --- what the recipe builds ------------------------------------------------------------------------------
    def resolved_arch(self, data: TrainData) -> str:
        if self.arch:
            return self.arch
        return "mlp" if data.data_kind == "vector" else "unet"

    def architecture(self, data: TrainData) -> dict:
        """The network's ``{"name", "config"}``: the defaults for this data, then ``arch_config`` over them."""
        arch = self.resolved_arch(data)
        if arch == "mlp" and data.data_kind != "vector":
            raise SettingsError(f"--arch mlp is for vector data (toy2d); {data.name!r} holds images: use unet")
        if arch in ("unet", "classifier") and data.data_kind != "image":
            raise SettingsError(f"--arch {arch} is for images; {data.name!r} holds vectors: use mlp")
        if arch == "classifier" and not data.class_names:
            raise SettingsError(f"--arch classifier needs labelled data; {data.name!r} has no classes")
        if arch == "classifier" and self.learn_sigma:
            raise SettingsError("--learn-sigma applies to denoisers, not to --arch classifier")
        config = {**default_config(arch, data, self.class_count(data), self.learn_sigma), **self.arch_config}
        architecture = {"name": arch, "config": config}
        # surface a bad --arch-config now, with the network's own message, and normalise it
        return {"name": arch, "config": build_network(architecture).config}

    def class_count(self, data: TrainData) -> int:
        """Classes the denoiser is conditioned on (0: unconditional)."""
        return len(data.class_names) if (self.conditional and data.class_names) else 0

    @property
    def trains_classifier(self) -> bool:
        return self.arch == "classifier"


def default_config(arch: str, data: TrainData, num_classes: int, learn_sigma: bool) -> dict:
    if arch == "mlp":
        return {"data_dim": data.data_shape[0], "hidden": 256, "depth": 4, "time_embed_dim": 64,
                "num_classes": num_classes, "learn_sigma": learn_sigma}
    channels, size = data.data_shape[0], data.data_shape[1]
    if arch == "classifier":
        return {"image_size": size, "in_channels": channels, "num_classes": len(data.class_names),
                "base_channels": 32, "channel_mult": [1, 2] if size <= 16 else [1, 2, 2, 2], "num_res_blocks": 1}
    mult = [1, 2, 2] if size <= 16 else [1, 2, 2, 2]
    resolutions = [size // 2**i for i in range(len(mult))]
    attention = [r for r in resolutions[1:] if r <= 16][:1]   # one attention level, at a small feature map
    return {"image_size": size, "in_channels": channels, "base_channels": 32 if size <= 16 else 64,
            "channel_mult": mult, "num_res_blocks": 2, "attention_resolutions": attention, "dropout": 0.1,
            "num_classes": num_classes, "learn_sigma": learn_sigma}
