"""``codesign train-supernet`` and ``codesign evaluate``: train once, then measure any sub-network.

Typer command functions (the app in ``codesign.cli`` registers them).  Every accuracy printed
is measured on the held-out test split; bad input raises ``CodesignError`` (one line, exit 2).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from codesign.cli.common import TARGET_HELP, BitsOpt, JsonOpt, emit_json
from hwmodels.errors import CodesignError

SpaceOpt = Annotated[Optional[str], typer.Option(
    "--space", help="search space name (small-cnn, mobilenetv3, or a plug-in's) or a user space .toml file")]
DataOpt = Annotated[str, typer.Option("--data", help="'digits' (built in), an .npz with arrays x and y, or an image folder")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed for the split, initialisation and sampling")]
SpaceCfgOpt = Annotated[Optional[str], typer.Option(
    "--space-config", help='JSON overriding the space\'s choices, e.g. \'{"depths": [1, 2]}\'')]


def _space_config(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodesignError(f"--space-config is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise CodesignError("--space-config must be a JSON object")
    return cfg


def _arch(text: str, space) -> dict:
    """'largest', 'smallest', 'random:SEED', a JSON object or a JSON file."""
    if text == "largest":
        return space.largest()
    if text == "smallest":
        return space.smallest()
    if text.startswith("random"):
        _, _, seed = text.partition(":")
        return space.sample(int(seed or 0))
    path = Path(text)
    try:
        raw = json.loads(path.read_text() if path.suffix == ".json" else text)
    except OSError as exc:
        raise CodesignError(f"--arch file {text}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise CodesignError(f"--arch must be largest, smallest, random:SEED, a JSON object or .json file ({exc})") from None
    if not isinstance(raw, dict):
        raise CodesignError("--arch must be a JSON object {parameter: value}")
    return space.validate(raw)


def train_supernet(
    space: SpaceOpt = "small-cnn",
    data: DataOpt = "digits",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="training epochs")] = 30,
    out: Annotated[Path, typer.Option("--out", "-o", help="checkpoint file to write")] = Path("supernet.pt"),
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    lr: Annotated[float, typer.Option("--lr", help="peak learning rate (one-cycle AdamW)")] = 3e-3,
    n_random: Annotated[int, typer.Option("--n-random", min=0, help="random sub-networks per step (sandwich rule)")] = 2,
    space_config: SpaceCfgOpt = None,
) -> None:
    """Train a weight-sharing supernet (sandwich rule + in-place distillation) and save a checkpoint."""
    from codesign.data import load_splits
    from codesign.spaces import get_space
    from codesign.supernet import extract, save_checkpoint, train_supernet as _train
    from codesign.training import TrainConfig, accuracy

    sp = get_space(space or "small-cnn", **_space_config(space_config))
    if not sp.has_supernet:
        raise CodesignError(f"space {sp.name} has no weight-sharing supernet; use codesign evaluate to train "
                            "a candidate on its own")
    splits = load_splits(data, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, n_random=n_random, seed=seed)
    typer.echo(f"training {sp.describe()} on {splits.name} ({len(splits.train)} train images), {epochs} epochs")
    t0 = time.perf_counter()
    net = _train(sp, splits, cfg, log=typer.echo)
    save_checkpoint(out, net, cfg, splits)
    for label, arch in (("largest", sp.largest()), ("smallest", sp.smallest())):
        acc = accuracy(extract(net, arch, splits), splits.test)
        typer.echo(f"{label} sub-network: measured test accuracy {acc:.4f} ({len(splits.test)} images)")
    typer.echo(f"saved {out} ({time.perf_counter() - t0:.0f}s)")


def evaluate(
    space: SpaceOpt = None,
    data: DataOpt = "digits",
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", help="supernet checkpoint; without one the architecture is trained from scratch")] = None,
    arch: Annotated[str, typer.Option("--arch", help="largest | smallest | random:SEED | JSON object | file.json")] = "largest",
    bits: BitsOpt = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help=f"reject bit-widths this target cannot run: {TARGET_HELP}")] = None,
    supported_bits: Annotated[Optional[str], typer.Option("--supported-bits", help="comma list of bit-widths the target runs, e.g. 4,8,32")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="epochs when training from scratch")] = 30,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", min=0, help="fine-tune the extracted sub-network")] = 0,
    qat_epochs: Annotated[int, typer.Option("--qat-epochs", min=0, help="quantization-aware fine-tune with the bit map")] = 0,
    seed: SeedOpt = 0,
    onnx_out: Annotated[Optional[Path], typer.Option("--onnx-out", help="also export the (float) network to this ONNX file")] = None,
    json_out: JsonOpt = None,
    space_config: SpaceCfgOpt = None,
) -> None:
    """Measure the test accuracy of one architecture at one bit map (fake-quant, calibrated on val)."""
    from codesign.data import load_splits
    from codesign.frontends.torch_frontend import example_input, export_onnx
    from codesign.quant import (FP, check_supported, parse_bit_pair, parse_bits, qat_finetune, quantize_model,
                                supported_bits as target_bits)
    from codesign.spaces import get_space
    from codesign.supernet import extract, finetune, load_checkpoint
    from codesign.training import TrainConfig, accuracy, train_module

    bits = bits or "fp"
    splits = load_splits(data, seed=seed)
    allowed = target_bits(target) if target else None
    if supported_bits:
        try:
            allowed = [int(b) for b in supported_bits.split(",") if b.strip()]
        except ValueError:
            raise CodesignError(f"--supported-bits must be a comma list of integers, got {supported_bits!r}") from None
    if allowed is not None and Path(bits).suffix.lower() not in (".json", ".toml"):  # uniform: fail before training
        check_supported({"*": parse_bit_pair(bits, "--bits")}, allowed, target or "the target")
    if checkpoint is not None:
        net, meta = load_checkpoint(checkpoint)
        if space and space != meta["space"]:
            raise CodesignError(f"checkpoint {checkpoint} is for space {meta['space']}, not {space}")
        if meta["data_fingerprint"] != splits.fingerprint:
            raise CodesignError(f"checkpoint {checkpoint} was trained on other data or split ({meta['data']}, "
                                f"seed {meta['train_config']['seed']}); pass the same --data and --seed")
        sp = net.space
        a = _arch(arch, sp)
        model = extract(net, a, splits)
        source = f"extracted from {checkpoint}"
    else:
        sp = get_space(space or "small-cnn", **_space_config(space_config))
        a = _arch(arch, sp)
        model = sp.build(a, splits.num_classes, splits.in_channels, splits.resolution, seed=seed)
        train_module(model, splits, TrainConfig(epochs=epochs, seed=seed))
        source = f"trained alone for {epochs} epochs"
    if finetune_epochs:
        finetune(model, splits, epochs=finetune_epochs, seed=seed)
        source += f", fine-tuned {finetune_epochs} epochs"
    if onnx_out is not None:
        export_onnx(model, example_input(model, splits.in_channels, splits.resolution), onnx_out,
                    dynamic_batch=True, check=True, what=f"model from space {sp.name}")
    bit_map = parse_bits(bits, model)
    if allowed is not None:
        check_supported(bit_map, allowed, target or "the target")
    quantized = any(w < FP or x < FP for w, x in bit_map.values())
    if qat_epochs and quantized:
        qmodel = qat_finetune(model, bit_map, splits, epochs=qat_epochs, seed=seed)
        source += f", QAT {qat_epochs} epochs"
    elif quantized:
        qmodel = quantize_model(model, bit_map, splits.val.x[:256])
    else:
        qmodel = model
    acc = accuracy(qmodel, splits.test)
    typer.echo(f"space {sp.name}, arch {sp.key(a)}")
    typer.echo(f"model: {source}; bits: {bits}")
    typer.echo(f"measured test accuracy: {acc:.4f} ({len(splits.test)} held-out images of {splits.name})")
    emit_json({"space": sp.name, "arch": a, "bits": {k: list(v) for k, v in bit_map.items()},
               "accuracy": acc, "accuracy_kind": "measured", "split": "test",
               "n_test": len(splits.test), "data": splits.name, "source": source}, json_out)
