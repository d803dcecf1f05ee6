"""Cost and quality measurements of a privatizer: params, MFLOPs, throughput, held-out utility."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lifeveil.privatizer.model import DeployedPrivatizer
from lifeveil.privatizer.privatizer import Privatizer
from lifeveil.teachers.base import Teacher, to_float_batch


@dataclass(frozen=True)
class Cost:
    """Size and compute of a network at one input size (FLOPs count a multiply-add as 2)."""

    params: int
    mflops: float
    input_size: int


def model_cost(net: nn.Module, input_size: int) -> Cost:
    """Parameters and MFLOPs of ``net`` for one (1, 3, S, S) input."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.rand(1, 3, input_size, input_size))
    return Cost(
        sum(p.numel() for p in net.parameters()), counter.get_total_flops() / 1e6, input_size
    )


def privatizer_cost(privatizer: Privatizer) -> Cost:
    """Cost of what runs on the device (student + VIB head)."""
    return model_cost(DeployedPrivatizer(privatizer.model).eval(), privatizer.input_size)


def throughput(
    net: Callable[[torch.Tensor], torch.Tensor], input_size: int, batch: int, repeats: int = 5
) -> float:
    """Median frames/s of ``net`` on random (batch, 3, S, S) inputs, after one warm-up call."""
    x = torch.rand(batch, 3, input_size, input_size)
    times = []
    with torch.inference_mode():
        net(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


@dataclass(frozen=True)
class HeldOut:
    """Held-out quality: bits disclosed and how much teacher semantics z keeps."""

    n: int
    kl_bits_mean: float
    kl_bits_std: float
    cosine_mean: (
        float  # cos(decoded z = mu, teacher embedding), both standardised (0 = constant guess)
    )
    cosine_sampled: float  # same with z sampled
    cosine_raw: float  # cos in the teacher's raw units (inflated by the shared mean direction)


def evaluate_heldout(
    privatizer: Privatizer, teacher: Teacher, images: Sequence[np.ndarray]
) -> HeldOut:
    """KL bits per frame and cosine(decoded z, teacher) on images not used in training."""
    rep = privatizer.privatize(images, mode="mean")
    with torch.inference_mode():
        target = torch.cat(
            [
                teacher(to_float_batch(images[i : i + 32], teacher.input_size))
                for i in range(0, len(images), 32)
            ]
        )
    sampled = privatizer.release(rep.mu, rep.logvar, "sample").z  # same posterior, sampled
    dec = privatizer.model.decoder
    cos = torch.nn.functional.cosine_similarity
    std_target = dec.standardise(target)
    with torch.inference_mode():
        std = [cos(dec(torch.from_numpy(z)), std_target).mean().item() for z in (rep.z, sampled)]
        raw = cos(dec.to_teacher_space(torch.from_numpy(rep.z)), target).mean().item()
    return HeldOut(
        len(images), float(rep.kl_bits.mean()), float(rep.kl_bits.std()), std[0], std[1], raw
    )
