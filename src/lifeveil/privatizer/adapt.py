"""Model evolution without re-uploading: an adapter from an old z space to a new one.

When the privatizer is retrained, the z already on the server were made by the old version,
and the raw video behind them may be gone. On the device, where some raw frames are still in
the vault, both versions encode the same frames; a map fitted on those pairs (a one-hidden-
layer network, or a ridge regression) takes old z to the new space, and the server applies it
to its stored z (issue 14 item 2).

When the new version releases a finite-scalar-quantised code (every shipped default does), the
adapter also *snaps* its output onto that code grid: per coordinate, thresholds chosen so that
the migrated values take each level as often as the new version's codes do on the fit frames
(quantile matching). Snapping keeps the coarse structure the new version's heads read and
throws away the fine variations of the old z in which identity survived; fitted on frames
with people in them, it maps faces to the codes the new version gives faces. Measured by the
accumulation attacker, identity in migrated z falls far below the old z's, for some scene
utility (``lifeveil adapt --evaluate``; README and docs/GUARANTEES.md have the numbers).

What the adapter can disclose: it is a fixed function of old z alone, so by the data processing
inequality a migrated z carries no more information about the frame (or the person in it) than
the old z it came from. Without snapping it keeps what the old version leaked; with snapping it
keeps at most the new code's bits per frame. Fitting it needs pairs of old and new z of the same
frames, made on the device; only the adapter (its weights and, when snapping, the thresholds)
goes to the server.

The network is fitted with PyTorch (imported only then); applying an adapter needs NumPy only
(:func:`lifeveil.mapping.apply_adapter`), weights are stored with safetensors' NumPy API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lifeveil.errors import CheckpointError, ShapeError
from lifeveil.io import atomic_path
from lifeveil.mapping import apply_adapter

FORMAT = "lifeveil-adapter"
VERSION = 2  # 2: optional snapping and hidden layer; version-1 files (linear) still load
DEFAULT_RIDGE = 10.0
MLP_MAX_EPOCHS, MLP_BATCH, MLP_PATIENCE = 300, 128, 10


@dataclass(frozen=True)
class Adapter:
    """z_new ~= z_old @ weight.T + bias, from one privatizer version to another.

    Attributes:
        weight: (d_new, d_old) float32.
        bias: (d_new,) float32.
        old_version / new_version: the checkpoints' version ids (hash of weights + config).
        fitted_on: how many frame pairs it was fitted on.
        ridge: the L2 penalty used.
        thresholds / levels: with snapping, coordinate ``j`` of the linear output becomes
            ``levels[i]`` where ``i`` counts the thresholds ``thresholds[j]`` below it.
        hidden_weight / hidden_bias: a one-hidden-layer adapter: ``weight`` then acts on
            ``relu(z_old @ hidden_weight.T + hidden_bias)`` (weight is (d_new, h)).
    """

    weight: np.ndarray
    bias: np.ndarray
    old_version: str
    new_version: str
    fitted_on: int
    ridge: float
    thresholds: np.ndarray | None = None  # (d_new, L - 1) ascending, or None: no snapping
    levels: np.ndarray | None = None  # (L,) the new code's values, with thresholds
    hidden_weight: np.ndarray | None = None  # (h, d_old): a ReLU layer before weight, or None
    hidden_bias: np.ndarray | None = None  # (h,)

    @property
    def snaps(self) -> bool:
        """Whether the output is snapped onto the new version's code grid."""
        return self.thresholds is not None

    @property
    def old_dim(self) -> int:
        """Dimension of the z it takes."""
        first = self.weight if self.hidden_weight is None else self.hidden_weight
        return int(first.shape[1])

    @property
    def hidden(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(weight, bias) of the hidden ReLU layer, or None for a linear adapter."""
        if self.hidden_weight is None or self.hidden_bias is None:
            return None
        return self.hidden_weight, self.hidden_bias

    @property
    def new_dim(self) -> int:
        """Dimension of the z it makes."""
        return int(self.weight.shape[0])

    def apply(self, old_z: np.ndarray) -> np.ndarray:
        """Old z (N, d_old) -> migrated z (N, d_new) float32."""
        old_z = np.asarray(old_z, dtype=np.float32)
        if old_z.ndim != 2 or old_z.shape[1] != self.old_dim:
            raise ShapeError(
                f"adapter {self.old_version} -> {self.new_version} takes z of shape "
                f"(N, {self.old_dim}), got {old_z.shape}"
            )
        snapping = None
        if self.thresholds is not None and self.levels is not None:
            snapping = (self.thresholds, self.levels)
        return apply_adapter(old_z, self.weight, self.bias, self.hidden, snapping)

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.safetensors`` (weight, bias, provenance in its metadata), atomically."""
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {
            "format": FORMAT,
            "version": str(VERSION),
            "old_version": self.old_version,
            "new_version": self.new_version,
            "fitted_on": str(self.fitted_on),
            "ridge": repr(self.ridge),
        }
        tensors = {
            "weight": np.ascontiguousarray(self.weight, dtype=np.float32),
            "bias": np.ascontiguousarray(self.bias, dtype=np.float32),
        }
        optional = {
            "thresholds": self.thresholds,
            "levels": self.levels,
            "hidden_weight": self.hidden_weight,
            "hidden_bias": self.hidden_bias,
        }
        for name, value in optional.items():
            if value is not None:
                tensors[name] = np.ascontiguousarray(value, dtype=np.float32)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Adapter:
        """Read :meth:`save` output; CheckpointError naming the file if it is not an adapter."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                weight = np.array(fh.get_tensor("weight"), copy=True)
                bias = np.array(fh.get_tensor("bias"), copy=True)
                optional = {
                    name: np.array(fh.get_tensor(name))
                    for name in ("thresholds", "levels", "hidden_weight", "hidden_bias")
                    if name in set(fh.keys())
                }
        except (SafetensorError, OSError, KeyError) as exc:
            raise CheckpointError(f"{path}: not a readable adapter file ({exc})") from None
        if meta.get("format") != FORMAT or weight.shape[:1] != bias.shape:
            raise CheckpointError(f"{path}: not a LifeVeil adapter (format {meta.get('format')!r})")
        return cls(
            weight,
            bias,
            meta["old_version"],
            meta["new_version"],
            int(meta["fitted_on"]),
            float(meta["ridge"]),
            **optional,
        )

    def describe(self) -> str:
        """One line: versions, shape, fit size, snapping."""
        snapped = f", snapped to {len(self.levels)} levels" if self.levels is not None else ""
        kind = (
            f"ridge {self.ridge:g}"
            if self.hidden_weight is None
            else f"{len(self.hidden_weight)} hidden ReLU units, weight decay {self.ridge:g}"
        )
        return (
            f"adapter {self.old_version} (d={self.old_dim}) -> {self.new_version} "
            f"(d={self.new_dim}), {kind}, fitted on {self.fitted_on} frame pairs{snapped}"
        )


def fit_adapter(
    old_z: np.ndarray,
    new_z: np.ndarray,
    old_version: str,
    new_version: str,
    ridge: float = DEFAULT_RIDGE,
) -> Adapter:
    """Ridge regression from old z to new z of the same frames (rows paired), closed form.

    The bias is not penalised (the data are centred first). Needs at least two pairs.
    """
    old_z, new_z = _checked_pairs(old_z, new_z, old_version, new_version)
    mean_old, mean_new = old_z.mean(axis=0), new_z.mean(axis=0)
    x, y = old_z - mean_old, new_z - mean_new
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    weight = np.linalg.solve(gram, x.T @ y).T  # (d_new, d_old)
    bias = mean_new - weight @ mean_old
    return Adapter(
        np.ascontiguousarray(weight, dtype=np.float32),
        bias.astype(np.float32),
        old_version,
        new_version,
        len(old_z),
        float(ridge),
    )


def fit_mlp_adapter(
    old_z: np.ndarray,
    new_z: np.ndarray,
    old_version: str,
    new_version: str,
    hidden: int = 256,
    weight_decay: float = 1e-4,
    seed: int = 0,
    max_epochs: int = MLP_MAX_EPOCHS,
) -> Adapter:
    """A one-hidden-layer ReLU network from old z to new z (MSE, Adam, full-batch-free
    minibatches), stopped early on a held-out tenth of the pairs; PyTorch on the device.

    Still a fixed function of old z alone (the same data-processing argument holds).
    """
    import torch

    x_all, y_all = _checked_pairs(old_z, new_z, old_version, new_version)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(x_all), generator=gen)
    n_val = max(1, len(order) // 10)
    x = torch.as_tensor(x_all, dtype=torch.float32)
    y = torch.as_tensor(y_all, dtype=torch.float32)
    val, train = order[:n_val], order[n_val:]
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, y.shape[1])
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=weight_decay)
    best, best_state, stale = float("inf"), None, 0
    for _epoch in range(max_epochs):
        for batch in train[torch.randperm(len(train), generator=gen)].split(MLP_BATCH):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x[batch]), y[batch]).backward()
            opt.step()
        with torch.no_grad():
            loss = float(torch.nn.functional.mse_loss(net(x[val]), y[val]))
        if loss < best - 1e-6:
            best, stale = loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif (stale := stale + 1) >= MLP_PATIENCE:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    first, last = net[0], net[2]
    return Adapter(
        last.weight.detach().numpy().astype(np.float32),
        last.bias.detach().numpy().astype(np.float32),
        old_version,
        new_version,
        len(x_all),
        float(weight_decay),
        hidden_weight=first.weight.detach().numpy().astype(np.float32),
        hidden_bias=first.bias.detach().numpy().astype(np.float32),
    )


def _checked_pairs(
    old_z: np.ndarray, new_z: np.ndarray, old_version: str, new_version: str
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs as float64 arrays; ShapeError / CheckpointError saying what is wrong."""
    old_z = np.asarray(old_z, dtype=np.float64)
    new_z = np.asarray(new_z, dtype=np.float64)
    if old_z.ndim != 2 or new_z.ndim != 2 or len(old_z) != len(new_z) or len(old_z) < 2:
        raise ShapeError(
            f"fitting an adapter needs paired z of shapes (N, d_old) and (N, d_new) with "
            f"N >= 2, got {old_z.shape} and {new_z.shape}"
        )
    if old_version == new_version:
        raise CheckpointError(f"old and new are the same version ({old_version}): nothing to adapt")
    return old_z, new_z


def code_levels(new_z: np.ndarray, levels: int) -> np.ndarray | None:
    """The ``levels`` values of an fsq code (-1 ... 1 in equal steps) if every value of
    ``new_z`` is one of them, else None (the new version does not release a code)."""
    half = (levels - 1) / 2
    grid = ((np.arange(levels) - half) / half).astype(np.float32)
    nearest = grid[np.abs(np.asarray(new_z, np.float32)[..., None] - grid).argmin(-1)]
    return grid if np.allclose(nearest, new_z, atol=1e-6) else None


def fit_snap(adapter: Adapter, old_z: np.ndarray, new_z: np.ndarray, levels: np.ndarray) -> Adapter:
    """``adapter`` with snapping thresholds fitted on paired z (quantile matching).

    Per coordinate, the thresholds split the adapter's linear output on ``old_z`` so that each
    level is taken as often as ``new_z`` takes it: the threshold after the first ``m`` sorted
    outputs lies halfway between output ``m`` and ``m + 1`` (-inf / +inf at the ends, so a level
    the new code never takes on these frames is never produced, and a coordinate whose output
    is constant gets the new code's level there).
    """
    linear = replace(adapter, thresholds=None, levels=None).apply(old_z).astype(np.float64)
    new_z = np.asarray(new_z, dtype=np.float32)
    shares = (np.abs(new_z[:, :, None] - levels[None, None, :]) < 1e-6).mean(axis=0)  # (d, L)
    counts = np.rint(np.cumsum(shares, axis=1)[:, :-1] * len(linear)).astype(np.int64)
    thresholds = np.empty(counts.shape, dtype=np.float64)
    for j in range(linear.shape[1]):
        ends = np.concatenate([[-np.inf], np.sort(linear[:, j]), [np.inf]])
        with np.errstate(invalid="ignore"):
            thresholds[j] = (ends[counts[j]] + ends[counts[j] + 1]) / 2
    return replace(
        adapter,
        thresholds=thresholds.astype(np.float32),
        levels=np.asarray(levels, dtype=np.float32),
    )


def fit_report(adapter: Adapter, old_z: np.ndarray, new_z: np.ndarray) -> dict[str, float]:
    """How well the adapter reproduces ``new_z`` from ``old_z``: mean cosine, R^2 and, when it
    snaps, the share of coordinates equal to the new code's."""
    pred = adapter.apply(old_z).astype(np.float64)
    new_z = np.asarray(new_z, dtype=np.float64)
    cos = (pred * new_z).sum(1) / (
        np.linalg.norm(pred, axis=1) * np.linalg.norm(new_z, axis=1) + 1e-12
    )
    resid = ((pred - new_z) ** 2).sum()
    total = ((new_z - new_z.mean(0)) ** 2).sum()
    report = {"mean_cosine": float(cos.mean()), "r2": float(1.0 - resid / max(total, 1e-12))}
    if adapter.snaps:
        report["code_agreement"] = float((np.abs(pred - new_z) < 1e-6).mean())
    return report
