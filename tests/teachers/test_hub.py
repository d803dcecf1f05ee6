"""Hub teachers (DINOv2, CLIP, SigLIP, Perception Encoder) from local folders.

No network here: every model is a tiny random-initialised config written with
``save_pretrained`` (or, for PE, a state dict in each of its published layouts) and loaded
back through the LifeVeil factories.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lifeveil.errors import CheckpointError, ModelUnavailableError
from lifeveil.teachers import create_teacher
from lifeveil.teachers.hub import (
    PEVisionConfig,
    PEVisionTower,
    apply_rope,
    rope_2d_frequencies,
)

from .checks import assert_embeds, assert_frozen

transformers = pytest.importorskip("transformers")

TINY_VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
TINY_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    vocab_size=99,
    bos_token_id=0,
    eos_token_id=1,
)
HUB_NAMES = ("dinov2", "clip", "siglip", "perception_encoder")


def save_tiny_dinov2(folder: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.Dinov2Config(image_size=56, patch_size=14, **TINY_VIT)
    transformers.Dinov2Model(config).save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path, full: bool) -> Path:
    torch.manual_seed(0)
    vision = dict(image_size=32, patch_size=8, **TINY_VIT)
    if full:
        config = transformers.CLIPConfig(
            text_config=TINY_TEXT, vision_config=vision, projection_dim=16
        )
        transformers.CLIPModel(config).save_pretrained(folder)
    else:
        config = transformers.CLIPVisionConfig(projection_dim=16, **vision)
        transformers.CLIPVisionModelWithProjection(config).save_pretrained(folder)
    return folder


def save_tiny_siglip(folder: Path) -> Path:
    torch.manual_seed(0)
    vision = dict(image_size=32, patch_size=8, **TINY_VIT)
    config = transformers.SiglipConfig(text_config=TINY_TEXT, vision_config=vision)
    transformers.SiglipModel(config).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------
# transformers teachers
# ---------------------------------------------------------------------------------------


def test_dinov2_from_local_folder(tmp_path, skimage_images):
    folder = save_tiny_dinov2(tmp_path / "dinov2")
    teacher = create_teacher("dinov2", cache=False, model_id_or_path=str(folder))
    assert teacher.name == "dinov2" and teacher.embed_dim == 32
    assert teacher.input_size == 224  # DINOv2's processor default: resize 256, crop 224
    assert teacher.preprocess_spec.resize_ratio == pytest.approx(256 / 224)
    assert_frozen(teacher)
    assert_embeds(teacher, skimage_images[:2])


def test_dinov2_cls_plus_mean_pooling(tmp_path, skimage_images):
    folder = save_tiny_dinov2(tmp_path / "dinov2")
    cls_only = create_teacher("dinov2", cache=False, model_id_or_path=str(folder))
    both = create_teacher("dinov2", cache=False, model_id_or_path=str(folder), pooling="cls+mean")
    assert both.embed_dim == 64
    emb = assert_embeds(both, skimage_images[:2])
    np.testing.assert_allclose(emb[:, :32], cls_only.embed(skimage_images[:2]), atol=1e-5)


def test_preprocessor_config_defines_the_input(tmp_path):
    folder = save_tiny_dinov2(tmp_path / "dinov2")
    processor = {
        "size": {"shortest_edge": 64},
        "crop_size": {"height": 56, "width": 56},
        "do_center_crop": True,
        "image_mean": [0.1, 0.2, 0.3],
        "image_std": [0.4, 0.5, 0.6],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    teacher = create_teacher("dinov2", cache=False, model_id_or_path=str(folder))
    spec = teacher.preprocess_spec
    assert (spec.size, spec.mean, spec.std) == (56, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert spec.resize_ratio == pytest.approx(64 / 56)


@pytest.mark.parametrize("full", [True, False], ids=["full-clip", "vision-only"])
def test_clip_from_local_folder(tmp_path, skimage_images, full):
    folder = save_tiny_clip(tmp_path / "clip", full)
    teacher = create_teacher("clip", cache=False, model_id_or_path=str(folder))
    assert teacher.name == "clip"
    assert teacher.embed_dim == 16  # projection_dim, read from the full config when needed
    assert teacher.input_size == 32
    assert_frozen(teacher)
    assert_embeds(teacher, skimage_images[:2])


def test_siglip_from_local_folder(tmp_path, skimage_images):
    folder = save_tiny_siglip(tmp_path / "siglip")
    teacher = create_teacher("siglip", cache=False, model_id_or_path=str(folder))
    assert teacher.name == "siglip" and teacher.embed_dim == 32
    assert teacher.squash and teacher.preprocess_spec.mean == (0.5, 0.5, 0.5)
    assert teacher.pixels(skimage_images[:2]).shape == (2, 3, 32, 32)
    assert_frozen(teacher)
    assert_embeds(teacher, skimage_images[:2])


def test_hub_id_found_in_local_cache(tmp_path, skimage_images):
    """A hub id resolves offline from a Hugging Face cache (the HF_HOME layout)."""
    repo = tmp_path / "hub" / "models--lifeveil-tests--tiny-dinov2"
    save_tiny_dinov2(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    teacher = create_teacher(
        "dinov2",
        cache=False,
        model_id_or_path="lifeveil-tests/tiny-dinov2",
        cache_dir=str(tmp_path / "hub"),
    )
    assert_embeds(teacher, skimage_images[:1])


# ---------------------------------------------------------------------------------------
# Perception Encoder
# ---------------------------------------------------------------------------------------

TINY_PE = PEVisionConfig(
    patch_size=8, width=32, layers=2, heads=2, mlp_width=64, image_size=32, output_dim=16
)


def meta_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's ``_convert_pe`` renames (Meta layout -> Eva layout), written out independently
    of LifeVeil's inverse so the two can check each other."""
    swaps = [
        ("conv1", "patch_embed.proj"),
        ("positional_embedding", "pos_embed"),
        ("transformer.resblocks.", "blocks."),
        ("ln_pre", "norm_pre"),
        ("ln_post", "norm"),
        ("ln_", "norm"),
        ("ls_1.gamma", "gamma_1"),
        ("ls_2.gamma", "gamma_2"),
        ("in_proj_", "qkv."),
        ("out_proj", "proj"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
    ]
    out = {}
    for k, v in state.items():
        for old, new in swaps:
            k = k.replace(old, new)
        if k.startswith("attn_pool"):
            k = k.replace("attn_pool.attn", "attn_pool")
            k = k.replace("attn_pool.layernorm", "attn_pool.norm")
            k = k.replace("attn_pool.probe", "attn_pool.latent")
            if k.startswith("attn_pool.qkv"):
                part, dim = k.rsplit(".", 1)[1], v.shape[0] // 3
                out[f"attn_pool.q.{part}"], out[f"attn_pool.kv.{part}"] = v[:dim], v[dim:]
                continue
        elif k == "proj":
            k, v = "head.weight", v.t()
            out["head.bias"] = torch.zeros(v.shape[0])
        elif k == "class_embedding":
            k, v = "cls_token", v.reshape(1, 1, -1)
        elif k == "pos_embed":
            v = v.unsqueeze(0)
        out[k] = v.contiguous()
    return out


def save_tiny_pe(folder: Path, layout: str) -> PEVisionTower:
    """Write a random tiny PE tower as Meta's .pt, timm's or open_clip's safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    tower = PEVisionTower(TINY_PE).eval()
    state = tower.state_dict()
    folder.mkdir(parents=True)
    if layout == "meta":  # whole CLIP: text tower at the top level, vision under visual.
        full = {f"visual.{k}": v for k, v in state.items()}
        full["token_embedding.weight"] = torch.zeros(10, 16)
        full["transformer.resblocks.0.ln_1.weight"] = torch.ones(16)
        torch.save(full, folder / "PE-Core-Tiny.pt")
    elif layout == "timm":
        save_file(meta_to_timm(state), str(folder / "model.safetensors"))
    else:
        trunk = {f"visual.trunk.{k}": v for k, v in meta_to_timm(state).items()}
        save_file(trunk, str(folder / "open_clip_model.safetensors"))
    return tower


@pytest.mark.parametrize("layout", ["meta", "timm", "open_clip"])
def test_perception_encoder_loads_every_layout(tmp_path, skimage_images, layout):
    reference = save_tiny_pe(tmp_path / "pe", layout)
    teacher = create_teacher(
        "perception_encoder", cache=False, model_id_or_path=str(tmp_path / "pe"), heads=2
    )
    assert teacher.name == "perception_encoder" and teacher.embed_dim == 16
    assert teacher.input_size == 32 and teacher.squash
    assert_frozen(teacher)
    emb = assert_embeds(teacher, skimage_images[:2])
    x = (teacher.pixels(skimage_images[:2]) - 0.5) / 0.5
    with torch.no_grad():
        np.testing.assert_allclose(emb, reference(x).numpy(), atol=1e-5)


def test_perception_encoder_without_weights_is_a_checkpoint_error(tmp_path):
    (tmp_path / "pe").mkdir()
    with pytest.raises(CheckpointError, match="PE-Core"):
        create_teacher("perception_encoder", cache=False, model_id_or_path=str(tmp_path / "pe"))


def test_rope_is_relative_and_spares_the_class_token():
    head_dim, grid = 8, 3
    angles = rope_2d_frequencies(head_dim, grid, grid, cls_token=True)
    assert angles.shape == (1 + grid * grid, head_dim)
    assert torch.all(angles[0] == 0)
    q, k = torch.randn(head_dim), torch.randn(head_dim)
    rq = apply_rope(q.expand(1 + grid * grid, -1), angles)
    rk = apply_rope(k.expand(1 + grid * grid, -1), angles)
    torch.testing.assert_close(rq[0], q)

    def score(a: tuple[int, int], b: tuple[int, int]) -> float:
        """Attention logit between the patches at (row, col) a and b."""
        return (rq[1 + a[0] * grid + a[1]] @ rk[1 + b[0] * grid + b[1]]).item()

    # equal (row, col) offsets give equal scores
    assert score((0, 0), (1, 2)) == pytest.approx(score((1, 0), (2, 2)), abs=1e-5)
    assert score((0, 1), (2, 1)) == pytest.approx(score((0, 2), (2, 2)), abs=1e-5)
    torch.testing.assert_close(rq.norm(dim=1), q.norm().expand(1 + grid * grid))


def test_pe_position_table_interpolates_to_other_sizes():
    tower = PEVisionTower(TINY_PE).eval()
    with torch.no_grad():
        assert tower(torch.randn(1, 3, 48, 48)).shape == (1, 16)


# ---------------------------------------------------------------------------------------
# Offline behaviour
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HUB_NAMES)
@pytest.mark.parametrize("allow_download", [False, True])
def test_unknown_hub_id_offline_fails_fast(tmp_path, monkeypatch, name, allow_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        create_teacher(
            name,
            cache=False,
            model_id_or_path="lifeveil-tests/no-such-model",
            allow_download=allow_download,
            cache_dir=str(tmp_path),
        )
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "huggingface-cli download lifeveil-tests/no-such-model --local-dir" in message
    assert "HF_HOME" in message
    assert ("HF_HUB_OFFLINE" in message) == allow_download


def test_missing_local_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        create_teacher("clip", cache=False, model_id_or_path=str(tmp_path / "absent"))


def test_import_lifeveil_does_not_import_transformers():
    code = (
        "import sys, lifeveil, lifeveil.teachers; "
        "print('transformers' in sys.modules, 'huggingface_hub' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
