"""Official Something-Else checkpoints in (`vislearn video convert something-else`): files laid out as the
official code saves them (`{'epoch','arch','state_dict','best_loss'}`, with and without DataParallel's
`module.`), converted, and run on real batches of the real sample: the same logits as the official layout's
own forward. Also the official I3D (resnet3d_xl) layout, and refusals: another model, other classes, a
pickle that would run code."""
from pathlib import Path

import pytest
import torch

from vislearn.video.actions.checkpoints import model_from_checkpoint
from vislearn.video.actions.convert import main
from vislearn.video.actions.models import create_model
from vislearn.common.checkpoint import load_checkpoint
from official_reference import OfficialGlobalI3D, OfficialSTIN, randomise
from sample_batch import sample_batch

OFFICIAL = {"stin": "coord", "stin_oie": "coord_latent", "stin_oie_nl": "coord_latent_nl"}

pytestmark = pytest.mark.usefixtures("one_thread")


def save_official(model: torch.nn.Module, path: Path, arch: str, prefix: str = "") -> Path:
    torch.save({"epoch": 31, "arch": arch, "best_loss": 2.75,
                "state_dict": {prefix + k: v for k, v in model.state_dict().items()}}, path)
    return path


def convert(capsys, *args) -> tuple[int, str, str]:
    rc = main(["something-else", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def labels(sample_dir):
    return sample_dir / "splits" / "compositional" / "labels.json"  # 174 classes, as the official models


@pytest.mark.parametrize("variant,prefix", [("stin", ""), ("stin_oie", "module."), ("stin_oie_nl", "module."),
                                            ("stin_oie_nl", "")])
def test_official_stin_gives_the_same_logits(variant, prefix, sample_dir, labels, tmp_path, capsys):
    official = randomise(OfficialSTIN(variant), seed=len(variant))
    arch = OFFICIAL[variant]
    ckpt = save_official(official, tmp_path / f"{arch}_exp_best.pth.tar", arch, prefix)
    rc, out, err = convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "best.pt")
    assert rc == 0, err
    assert f"{variant} (official {arch}), 174 classes" in out and "epoch 31" in out
    converted = load_checkpoint(tmp_path / "best.pt")
    assert converted["model_args"] == {"official": True, "feature_dim": 256, "num_frames": 8, "num_slots": 4}
    assert converted["config"]["official_slots"] and converted["config"]["num_box_frames"] == 8
    assert converted["converted_from"]["best_loss"] == 2.75
    model = model_from_checkpoint(converted)
    batch = sample_batch(sample_dir, converted["config"], views=(2, 2))  # 28 real clips, official slot layout
    categories = batch["box_ids"][:, None, :] * batch["box_mask"]  # per frame, 0 where no box (official)
    with torch.no_grad():
        want = official(categories, batch["boxes"])
        got = model(batch)
    assert got.shape == (28, 174) and want.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_wrong_model_wrong_classes_and_an_existing_out(sample_dir, labels, tmp_path, capsys):
    ckpt = save_official(randomise(OfficialSTIN("stin_oie")), tmp_path / "coord_latent_best.pth.tar", "coord_latent")
    rc, _, err = convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "a.pt", "--model", "stin")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "not an official coord checkpoint" in err and "unexpected: category_embed_layer.weight" in err
    few = tmp_path / "labels.json"
    few.write_text('{"a": "0", "b": "1"}')
    rc, _, err = convert(capsys, ckpt, "--labels", few, "--out", tmp_path / "a.pt")
    assert rc == 2 and "2 classes, but" in err and "174" in err
    (tmp_path / "b.pt").write_text("mine")
    rc, _, err = convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "b.pt")
    assert rc == 2 and "exists; pass --overwrite" in err and (tmp_path / "b.pt").read_text() == "mine"
    with pytest.raises(SystemExit) as e:  # no checkpoint without box slots
        convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "a.pt", "--num-slots", "0")
    assert e.value.code == 2 and "--num-slots: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()


def official_i3d_model() -> OfficialGlobalI3D:
    torch.manual_seed(0)
    return randomise(OfficialGlobalI3D(174), seed=3)


def test_official_i3d_gives_the_same_logits(sample_dir, labels, tmp_path, capsys):
    """global_i3d: the resnet3d_xl ResNet-50 I3D under its own names (conv+bn Sequentials, `shortcut`), zero
    temporal padding, unpadded stem pool, layer4 stride 1, 1x1x1 conv head -> i3d_r50(official=True)."""
    official = official_i3d_model()
    ckpt = save_official(official, tmp_path / "global_i3d_best.pth.tar", "global_i3d", "module.")
    rc, out, err = convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "i3d.pt")
    assert rc == 0, err
    converted = load_checkpoint(tmp_path / "i3d.pt")
    assert converted["model_name"] == "i3d_r50" and converted["model_args"]["official"] is True
    model = model_from_checkpoint(converted)
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 3, 6, 48, 64, generator=g)  # short odd-sized clips: the padding and pooling differ there
    with torch.no_grad():
        want, got = official(frames), model({"frames": frames})
        assert want.abs().max() > 0.01
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        # the Kinetics I3D file of the official code (a plain state dict, `fc` head) as i3d_r50's trunk
        kinetics = {f"module.{k}".replace("module.classifier.", "module.fc."): v
                    for k, v in official.i3D.state_dict().items()}
        torch.save(kinetics, tmp_path / "kinetics-res50.pth")
        trunk = create_model("i3d_r50", 5, backbone_weights=str(tmp_path / "kinetics-res50.pth"), official=True).eval()
        torch.testing.assert_close(trunk.feature_map({"frames": frames}), official.i3D(frames), rtol=1e-4, atol=1e-4)
    default = create_model("i3d_r50", 5).eval()  # replicate padding, padded stem pool: other numbers, same weights
    default.backbone.load_state_dict(trunk.backbone.state_dict())
    with torch.no_grad():
        assert not torch.allclose(default.feature_map({"frames": frames}).mean((2, 3, 4)),
                                  official.i3D(frames).mean((2, 3, 4)), atol=1e-3)


class Payload:
    """Unpickling it calls open(marker, "w"): the marker file appears (the pickle stores builtins.open, not this class)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused(labels, tmp_path, capsys):
    from vislearn.video.actions.train import main as train

    evil, marker, control = tmp_path / "coord_best.pth.tar", tmp_path / "ran.txt", tmp_path / "control.txt"
    torch.save({"epoch": 1, "arch": "coord", "state_dict": {"x": Payload(marker)}}, evil)
    torch.save({"state_dict": {"x": Payload(control)}}, tmp_path / "control.pth.tar")
    assert evil.exists() and not marker.exists() and not control.exists()
    torch.load(tmp_path / "control.pth.tar", weights_only=False).get("state_dict")["x"].close()
    assert control.exists()  # control: the unsafe way does run the payload's code
    for cli, args in ((main, ["something-else", evil, "--labels", labels, "--out", tmp_path / "out.pt"]),
                      (train, ["--dry-run", f"split={labels.parent}", "model=small3d", f"model_args.backbone_weights={evil}"])):
        assert cli([str(a) for a in args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "could run code" in lines[0] and str(evil) in lines[0], lines
        assert not marker.exists()
    assert not (tmp_path / "out.pt").exists()


def test_a_converted_model_is_the_base_of_the_fewshot_protocol(sample_dir, labels, tmp_path, capsys):
    import json

    from vislearn.video.actions.fewshot import main as fewshot

    ckpt = save_official(randomise(OfficialSTIN("stin_oie_nl")), tmp_path / "coord_latent_nl_best.pth.tar",
                         "coord_latent_nl", "module.")
    assert convert(capsys, ckpt, "--labels", labels, "--out", tmp_path / "base.pt")[0] == 0
    folder = tmp_path / "fewshot"
    folder.mkdir()
    (folder / "base_labels.json").write_text(labels.read_text())
    novel = ["Tearing something into two pieces", "Throwing something"]
    (folder / "finetune_labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(novel)}))
    for name, ids in (("training", ["2", "4"]), ("validation", ["2003", "6981", "57082", "862"])):
        recs = [{"id": v, "label": novel[i % 2], "template": novel[i % 2], "placeholders": []} for i, v in enumerate(ids)]
        (folder / f"finetune_1shot_{name}.json").write_text(json.dumps(recs))
    rc = fewshot(["--fewshot", str(folder), "--base", str(tmp_path / "base.pt"), f"boxes={sample_dir / 'annotations.json'}",
                  f"out={tmp_path / 'run'}", "workers=0", "device=cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "given with --base" in out.out and "1-shot" in out.out
    draw = tmp_path / "run" / "finetune" / "1shot" / "draw_0"
    result = json.loads((draw / "results.json").read_text())
    assert result["train_top1"] == 1.0 and result["evaluation"]["videos"] == 4
    tuned = load_checkpoint(draw / "best.pt")
    assert tuned["class_names"] == novel and tuned["model_args"]["official"] is True
    assert tuned["config"]["official_slots"]  # the base model's inputs, not the defaults
    assert not (tmp_path / "run" / "base").exists()
    # the run's summary and page: no base top-1 (none measured here), the checkpoint it started from
    summary = json.loads((tmp_path / "run" / "fewshot_results.json").read_text())
    assert summary["base"] is None and summary["base_checkpoint"] == str(tmp_path / "base.pt")
    assert "warning" not in out.err and (tmp_path / "run" / "report.html").is_file()
