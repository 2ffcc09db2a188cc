"""``kpdev demo``: the whole job on a simulated board, with data that ships with kpdev.

Build a Knowledge Pack for the UEA BasicMotions accelerometer/gyroscope set (models trained by
examples/basicmotions/train.py), deploy it, evaluate it on the held-out recordings, profile it,
recognize a continuous recording, and write the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kpdev.host.cli.evaluate import print_profile, print_results, print_windows
from kpdev.host.cli.model import print_vectors
from kpdev.host.cli.options import JsonOpt, emit, err, out, session
from kpdev.host.errors import UsageError
from kpdev.host.plain import jsonable

DEMO = Path(__file__).resolve().parents[1] / "demo"
CLASSES = ["Standing", "Running", "Walking", "Badminton"]


def _build(out_dir: Path) -> Path:
    from kpdev.host.datasets import load_dataset
    from kpdev.host.features import load_spec
    from kpdev.host.packs.build import ModelSpec, build_pack

    path = out_dir / "basicmotions.kp"
    build_pack(
        path,
        [ModelSpec("main", DEMO / "basicmotions_mlp.tflite", CLASSES)],
        name="basicmotions",
        description="Four activities from a smart watch's accelerometer and gyroscope "
        "(UEA BasicMotions); 48 features over 10 s windows, int8 MLP.",
        pipeline=load_spec(DEMO / "basicmotions_pipeline.yml"),
        dataset=load_dataset(str(DEMO / "basicmotions.npz")),
    )
    return path


def demo(
    board: Annotated[
        str, typer.Option("--board", "-b", help="Simulated board to run the demo on.")
    ] = "sim-mcu",
    out_dir: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for the pack, measurements and report."),
    ] = Path("kpdev-demo"),
    json_: JsonOpt = False,
) -> None:
    """Run the whole job on a simulated board: build a Knowledge Pack for a real motion dataset
    (UEA BasicMotions), deploy it, evaluate it on the held-out recordings, profile each stage,
    recognize a continuous recording and write a report (Markdown and HTML with figures).
    """
    from kpdev.host.boards.catalog import get_board
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.datasets import load_dataset, load_signal
    from kpdev.host.evaluation.evaluate import evaluate, footprint, profile_pack
    from kpdev.host.evaluation.metrics import (
        board_info,
        measurements,
        versions_of,
        write_measurements,
    )
    from kpdev.host.evaluation.recognize import recognize
    from kpdev.host.evaluation.report import write_report
    from kpdev.host.packs.deploy import deploy_pack
    from kpdev.host.packs.pack import read_pack

    b = get_board(board)
    if not b.simulated:
        raise UsageError(
            f"the demo runs on a simulated board, not {board}: try --board sim-mcu or sim-linux"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda *a, **k: None) if json_ else err.print
    say(f"writing into {out_dir.resolve()} (choose another folder with --out)", style="dim")
    say("[bold]1/6[/bold] building the Knowledge Pack (BasicMotions, int8 MLP)")
    pack = read_pack(_build(out_dir))
    _, test = load_dataset(str(DEMO / "basicmotions.npz")).split()
    labels = [test.classes[int(i)] for i in test.y]
    with session(board, None, None, 60.0) as c:
        say(f"[bold]2/6[/bold] deploying to {b.id} ({b.name})")
        with progress_bar(not json_, "upload", unit="bytes") as progress:
            plan = deploy_pack(c, pack, b, progress=progress)
        if not json_:
            print_vectors(plan["vectors"])
        say(f"[bold]3/6[/bold] evaluating on the {len(test)} held-out recordings")
        with progress_bar(not json_, "eval", len(test)) as progress:
            results = evaluate(
                c,
                test.x,
                labels,
                classes=CLASSES,
                pipeline=pack.manifest["pipeline"],
                progress=progress,
            )
        say("[bold]4/6[/bold] profiling each stage on the device")
        prof = profile_pack(c, pack, 20)
        results["profile"] = prof
        results["footprint"] = footprint(pack, None, b)
        say("[bold]5/6[/bold] recognizing a continuous recording, streamed to the device")
        with progress_bar(not json_, "stream") as progress:
            rec = recognize(pack, load_signal(str(DEMO / "basicmotions_walk.npz")), c, progress)
        doc = measurements(
            "demo",
            board=board_info(c, b),
            versions=versions_of(c),
            results=results,
            pack={"name": pack.name, "version": pack.manifest["version"], "path": pack.path},
            dataset=dict(test.summary(), split="test"),
            inputs={"dataset": str(DEMO / "basicmotions.npz")},
        )
    mpath = write_measurements(doc, out_dir / f"measurements-{board}.json")
    (out_dir / f"profile-{board}.json").write_text(json.dumps(jsonable(prof), indent=2) + "\n")
    say("[bold]6/6[/bold] writing the report")
    made = write_report([doc], out_dir / "report")
    summary: dict[str, Any] = {
        "board": board,
        "out_dir": str(out_dir.resolve()),
        "pack": str(out_dir / "basicmotions.kp"),
        "vectors_match": all(v["match"] for v in plan["vectors"]),
        "accuracy": results["classification"]["accuracy"],
        "host_accuracy": (pack.manifest.get("metrics") or {}).get("accuracy"),
        "latency_us": results["latency_us"],
        "recognized": rec["classification"],
        "measurements": str(mpath),
        "report": made,
    }
    if json_:
        emit(summary)
        return
    print_results(doc, out)
    print_profile(prof)
    print_windows(rec)
    out.print(
        f"\nall files in {out_dir.resolve()}\n"
        f"report: [bold]{made['html']}[/bold] (and {made['markdown'].name}); pack "
        f"{out_dir / 'basicmotions.kp'}; measurements {mpath}\n"
        f"next: kpdev pack inspect {out_dir / 'basicmotions.kp'} · kpdev eval "
        f"{out_dir / 'basicmotions.kp'} --board sim-linux --dataset {DEMO / 'basicmotions.npz'}"
        f"\n{b.id} keeps running in the background with the pack deployed: kpdev stats --board "
        f"{b.id} · kpdev sim stop {b.id}"
    )
