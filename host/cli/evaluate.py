"""``kpdev deploy PACK``, ``kpdev eval``, ``kpdev recognize``, ``kpdev profile``, ``kpdev report``:
Knowledge Packs on the device, measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from kpdev import __version__
from kpdev.host.atomic import refuse_existing, write_atomic
from kpdev.host.cli.options import (
    BoardOpt,
    ForceOpt,
    JsonOpt,
    KeyOpt,
    PortOpt,
    TimeoutOpt,
    emit,
    log_event,
    out,
    parse_window,
    progress_bar,
)
from kpdev.host.cli.render import human_bytes, jsonable
from kpdev.host.client.client import Client
from kpdev.host.client.session import open_session, resolve_board
from kpdev.host.errors import UsageError
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.formats import EXTENSIONS

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="Dataset: a .npz (x, y[, classes, axes, fold]), a UEA/UCR .ts file (its TRAIN/TEST "
        "sibling gives the split), a CSV recording or a folder of them, a folder of WAV folders "
        "(one per class), or sklearn:digits.",
        show_default=False,
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="SIZE,STRIDE in samples to cut recordings (CSV, WAV) into windows; default: the "
        "pack pipeline's window.",
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the train/test split.")]
FractionOpt = Annotated[
    float | None,
    typer.Option(
        "--test-fraction",
        help="Share of the dataset held out for testing (stratified); default: the dataset's "
        "own split when it has one (UEA TRAIN/TEST, an npz fold), else 0.25.",
        min=0.01,
        max=0.99,
        show_default=False,
    ),
]


def _read_pack(path: Path):
    from kpdev.host.packs.pack import read_pack

    return read_pack(path)


# -- deploy PACK ---------------------------------------------------------------------------
def deploy_pack(
    path: Path, board, port, key, timeout: float, json_: bool, dry_run: bool, force: bool
) -> None:
    """``kpdev deploy PACK.kp``: check, upload (resuming), verify, activate; report vectors."""
    from kpdev.host.packs.deploy import deploy_pack as run

    pack = _read_pack(path)
    b = resolve_board(board, port)
    with open_session(board, port, key, timeout=timeout, on_event=log_event) as c:
        with progress_bar(not json_ and not dry_run, f"upload {pack.name}") as progress:
            plan = run(c, pack, b, dry_run=dry_run, force=force, progress=progress)
    if json_:
        emit(plan)
        return
    if dry_run:
        out.print(
            f"[bold]{pack.name}[/bold] {pack.manifest['version']} fits {plan['board']}: "
            f"{human_bytes(plan['model_bytes'])} of models, "
            f"{human_bytes(plan['ram_bytes']) if plan['ram_bytes'] else 'unknown'} of RAM planned "
            "(dry run: nothing sent)"
        )
        return
    out.print(
        f"deployed [bold]{pack.name}[/bold] {pack.manifest['version']} to {plan['board']}: "
        f"{len(plan['models'])} model(s), {human_bytes(plan['model_bytes'])}"
        + (" [green]active[/green]" if plan["active"] else "")
    )
    print_vectors(plan.get("vectors") or [])
    bad = [v for v in plan.get("vectors") or [] if not v["match"]]
    if bad:
        raise DeviceError(
            f"{len(bad)} of {len(plan['vectors'])} test vector checks differ on "
            f"{plan['board']} (the pack is active: --force was given or the pipeline differs)",
            ops.E_INFER,
        )


def print_vectors(vectors: list[dict]) -> None:
    if not vectors:
        return
    t = Table(title="test vectors on the device", title_justify="left")
    for col in ("vector", "check", "result", "detail"):
        t.add_column(col)
    for v in vectors:
        detail = ""
        if v.get("max_diff") is not None:
            detail = f"max |diff| {v['max_diff']:g}"
        elif v.get("class") is not None:
            detail = f"class {v['class']}" + (f" (label {v['label']})" if v.get("label") else "")
        t.add_row(
            str(v["vector"]),
            v["check"],
            "[green]match[/green]" if v["match"] else "[red]MISMATCH[/red]",
            detail,
        )
    out.print(t)


# -- eval ----------------------------------------------------------------------------------
def _test_split(dataset_spec: str, window, test_fraction, seed, pipeline):
    from kpdev.host.datasets import load_dataset

    if window is None and pipeline:
        window = (pipeline["window"]["size"], pipeline["window"]["stride"])
    try:
        ds = load_dataset(dataset_spec, window=window)
    except UsageError as e:
        if window is None and "window" in str(e):
            raise UsageError(f"{e} (or evaluate a pack whose pipeline gives the window)")
        raise
    _, test = ds.split(test_fraction, seed)
    return ds, test


def _check_windows(x: np.ndarray, pipeline: dict, what: str) -> None:
    want = (pipeline["window"]["size"], len(pipeline["axes"]))
    if x.ndim != 3 or tuple(x.shape[1:]) != want:
        raise UsageError(
            f"{what} holds samples of shape {list(x.shape[1:])} but the pack's pipeline takes "
            f"windows of {want[0]} samples x {want[1]} axes ({', '.join(pipeline['axes'])})"
        )


def versions_of(c: Client) -> dict[str, Any]:
    return {
        "kpdev": __version__,
        "agent": c.device.get("agent"),
        "runtime": c.device.get("runtime"),
        "runtime_version": c.device.get("runtime_version"),
        "backends": c.device.get("backends"),
    }


def board_info(c: Client, b) -> dict[str, Any]:
    return {
        "name": c.device.get("board"),
        "catalog": b.name if b else None,
        "runtime": c.device.get("runtime"),
        "platform": c.device.get("platform"),
    }


def eval_(
    target: Annotated[
        Path,
        typer.Argument(
            help="A Knowledge Pack (.kp), deployed first when the device does not hold it, or a "
            f"model file ({', '.join(EXTENSIONS)}) uploaded as is.",
            show_default=False,
        ),
    ],
    dataset: DatasetOpt,
    window: WindowOpt = None,
    test_fraction: FractionOpt = None,
    seed: SeedOpt = 0,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Evaluate at most this many test samples.", min=1),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            help="Samples per request; default: as many as the device's payload limit takes.",
            min=1,
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(
            "--in-flight",
            help="Requests in flight (pipelining); default: the device's window.",
            min=1,
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Measurements JSON to write; default kpdev-eval-NAME-BOARD.json here. An "
            "existing file is kept unless --force.",
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Evaluate a pack or model on the device against a dataset's test split.

    Streams the test samples through the device (batched and pipelined), then reports accuracy,
    per-class precision/recall/F1, the confusion matrix, on-device latency (mean/p50/p99), link
    bytes and, where the board reports it, energy per inference; writes a measurements file that
    `kpdev report` turns into a report.
    """
    from kpdev.host.evaluation.evaluate import evaluate
    from kpdev.host.evaluation.metrics import measurements, write_measurements
    from kpdev.host.packs.build import dataset_inputs
    from kpdev.host.packs.deploy import deploy_pack as run_deploy
    from kpdev.host.packs.deploy import read_model_file

    win = parse_window(window)
    if out_file is not None:  # before the run, not after it
        refuse_existing(out_file, force, "measurements file")
    b = resolve_board(board, port)
    is_pack = target.suffix == ".kp"
    pack = _read_pack(target) if is_pack else None
    pipeline = pack.manifest.get("pipeline") if pack else None
    ds, test = _test_split(dataset, win, test_fraction, seed, pipeline)
    if limit:
        test = test.subset(np.arange(min(limit, len(test))))
    if pipeline:
        _check_windows(test.x, pipeline, dataset)
    xs = test.x
    if pack is not None and not pipeline and len(pack.root()["inputs"]) == 1:
        # Without a pipeline the samples are the model input: shape (and quantize) them as
        # kpdev pack build did for the pack's own accuracy.
        xs = dataset_inputs(xs, pack.root()["inputs"][0], f"dataset {dataset}")
    labels = [test.classes[int(i)] for i in test.y]
    with open_session(board, port, key, timeout=timeout, on_event=log_event) as c:
        name = pack.name if pack is not None else target.stem
        path = out_file or Path(f"kpdev-eval-{name}-{c.device.get('board')}.json")
        refuse_existing(path, force, "measurements file")
        if pack is not None:
            plan = run_deploy(c, pack, b)
            # The pack's answers: classes no model routes on (a router's classes are not).
            classes = list(ds.classes)
            for m in pack.models:
                results = m.get("results") or {}
                for i, label in enumerate(m["classes"]):
                    if str(i) not in results and label not in classes:
                        classes.append(label)
            stored = [m["name"] for m in plan["models"]]
            model = None
            name = pack.name
        else:
            data, fmt = read_model_file(target)
            model = name = target.stem
            c.upload(model, data, fmt, {}, activate=False)
            ins = (c.model_info(model).get("io") or {}).get("inputs") or []
            if len(ins) == 1:
                xs = dataset_inputs(xs, ins[0], f"dataset {dataset}")
            classes = list(ds.classes)
            stored = [model]
        with progress_bar(
            not json_, f"eval {name} on {c.device.get('board')}", len(test)
        ) as progress:
            results = evaluate(
                c,
                xs,
                labels,
                classes=classes,
                pipeline=pipeline,
                model=model,
                stored_models=stored,
                batch=batch,
                window=requests,
                progress=progress,
            )
        doc = measurements(
            "eval",
            board=board_info(c, b),
            versions=versions_of(c),
            results=results,
            pack=(
                {"name": pack.name, "version": pack.manifest["version"], "path": str(target)}
                if pack
                else None
            ),
            model=None if pack else {"name": model, "path": str(target)},
            dataset=dict(test.summary(), seed=seed, test_fraction=test_fraction, split="test"),
            inputs={"dataset": dataset, "window": win, "batch": batch, "in_flight": requests},
        )
    write_measurements(doc, path)
    if json_:
        emit(dict(doc, path=str(path)))
        return
    print_results(doc, out)
    out.print(f"measurements written to {path}")


def print_results(doc: dict, console) -> None:
    """The tables of an eval measurements document."""
    r = doc["results"]
    cl = r["classification"]
    lat = r["latency_us"]
    what = (doc.get("pack") or doc.get("model") or {}).get("name")
    console.print(
        f"[bold]{what}[/bold] on {doc['board']['name']}: accuracy [bold]{cl['accuracy']:.3f}"
        f"[/bold] ({cl['n']} samples), macro F1 {cl['macro_f1']:.3f}"
    )
    t = Table(title="per class", title_justify="left")
    for col in ("class", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for label, m in cl["per_class"].items():
        t.add_row(
            label,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            str(m["support"]),
        )
    console.print(t)
    cm = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    cm.add_column("")
    for label in cl["classes"]:
        cm.add_column(label[:10], justify="right")
    for label, row in zip(cl["classes"], cl["confusion"], strict=True):
        cm.add_row(label, *[str(v) for v in row])
    console.print(cm)
    link = r["link"]
    energy = r.get("energy")
    e_text = "not reported"
    if energy:
        e_text = f"{energy['uj_per_inference']:.1f} µJ" + (
            " (estimated)" if energy.get("estimated") else ""
        )
    console.print(
        f"on-device latency µs: mean {lat['mean']:.0f}, p50 {lat['p50']:.0f}, p99 {lat['p99']:.0f}"
        f" · link {link['per_inference']:.0f} B/sample (batch {link['batch']}, "
        f"{link['window']} in flight) · energy/inference {e_text} · {r['wall_s']:.1f} s"
    )


# -- recognize -----------------------------------------------------------------------------
def recognize(
    pack_path: Annotated[
        Path, typer.Argument(help="The Knowledge Pack (.kp) to run.", show_default=False)
    ],
    signal: Annotated[
        Path,
        typer.Option(
            "--signal",
            "-s",
            help="A raw recording: CSV (one column per axis, optional label column) or .npz "
            "(signal [T, axes], optional labels, classes).",
            show_default=False,
        ),
    ],
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help="device: stream the samples to the device, which cuts windows and sends a "
            "class per window; host: the same pipeline and models emulated on the host.",
        ),
    ] = "device",
    label_column: Annotated[
        str, typer.Option("--label-column", help="CSV column holding per-sample labels.")
    ] = "label",
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Run a raw recording through a pack's pipeline and models; print the class of each window.

    With labels in the recording, each window's true class is the majority label of its samples
    and a confusion matrix follows.
    """
    from kpdev.host.datasets import load_signal
    from kpdev.host.evaluation.recognize import recognize as run

    if platform not in ("device", "host"):
        raise UsageError(f"--platform {platform!r}: use device or host")
    pack = _read_pack(pack_path)
    sig = load_signal(str(signal), label_column=label_column)
    if platform == "host":
        doc = run(pack, sig, None)
    else:
        from kpdev.host.packs.deploy import deploy_pack as run_deploy

        b = resolve_board(board, port)
        with open_session(board, port, key, timeout=timeout, on_event=log_event) as c:
            run_deploy(c, pack, b)
            with progress_bar(not json_, f"recognize on {c.device.get('board')}") as progress:
                doc = run(pack, sig, c, progress)
    doc["signal"] = str(signal)
    if json_:
        emit(doc)
        return
    print_windows(doc)


def print_windows(doc: dict) -> None:
    """The per-window table (and confusion) of a recognition."""
    rows = doc["windows"]
    truth = any(r["label"] for r in rows)
    report = doc["classification"]
    t = Table(title=f"{doc['pack']} on {doc['board']}: {len(rows)} windows", title_justify="left")
    for col in ("window", "start", "class", "score", "µs") + (("label",) if truth else ()):
        t.add_column(col, justify="right" if col in ("window", "start", "score", "µs") else "left")
    for r in rows:
        cells = [
            str(r["window"]),
            str(r["start"]),
            str(r["class"]),
            "-" if r["score"] is None else f"{r['score']:.3f}",
            f"{r['us']:.0f}",
        ]
        if truth:
            ok = r["label"] == r["class"]
            cells.append(r["label"] if ok else f"[red]{r['label']}[/red]")
        t.add_row(*cells)
    out.print(t)
    if report:
        out.print(f"accuracy {report['accuracy']:.3f} over {report['n']} windows")
        cm = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
        cm.add_column("")
        for label in report["classes"]:
            cm.add_column(label[:10], justify="right")
        for label, row in zip(report["classes"], report["confusion"], strict=True):
            cm.add_row(label, *[str(v) for v in row])
        out.print(cm)


# -- profile -------------------------------------------------------------------------------
def profile(
    pack_path: Annotated[
        Path | None,
        typer.Argument(
            help="A Knowledge Pack (.kp) to deploy and profile; default: the device's pack.",
            show_default=False,
        ),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", "-n", help="Runs to average.", min=1)] = 20,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the profile JSON here (an existing file is kept unless --force).",
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 60.0,
    json_: JsonOpt = False,
) -> None:
    """Time each stage on the device: every feature generator, scaling, each model.

    Runs the pack's first test vector (its raw window) RUNS times on the device and prints the
    mean microseconds of each stage (MicroPython and CPython expose no cycle counter here, so
    times are in µs).
    """
    from kpdev.host.evaluation.evaluate import profile_pack
    from kpdev.host.packs.deploy import deploy_pack as run_deploy

    if out_file is not None:
        refuse_existing(out_file, force, "profile file")
    pack = _read_pack(pack_path) if pack_path else None
    b = resolve_board(board, port)
    with open_session(board, port, key, timeout=timeout, on_event=log_event) as c:
        if pack is not None:
            run_deploy(c, pack, b)
        doc = profile_pack(c, pack, runs)
    if out_file:
        text = json.dumps(jsonable(doc), indent=2) + "\n"
        write_atomic(out_file, lambda f: f.write(text.encode("utf-8")))
    if json_:
        emit(doc)
        return
    print_profile(doc)


def print_profile(doc: dict) -> None:
    """The per-stage table of a profile."""
    t = Table(
        title=f"{doc['pack']} on {doc['board']} ({doc['runtime']}), mean of {doc['runs']} runs",
        title_justify="left",
    )
    for col in ("stage", "µs", "share"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for s in doc["stages"]:
        share = s["us"] / doc["total_us"] * 100 if doc["total_us"] else 0
        t.add_row(s["name"], f"{s['us']:.1f}", f"{share:.1f} %")
    t.add_row("[bold]total[/bold]", f"[bold]{doc['total_us']:.1f}[/bold]", "")
    out.print(t)


# -- report --------------------------------------------------------------------------------
def report(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Measurements files (from kpdev eval); several are compared side by side.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for report.md, report.html, figures.")
    ] = Path("kpdev-report"),
    profile_file: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="A profile JSON (kpdev profile --out) to include.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Write a Markdown and an HTML report with figures from measurements files.

    Per run: accuracy, per-class scores, confusion matrix, latency histogram; for several runs,
    a comparison table and chart.
    """
    from kpdev.host.evaluation.metrics import read_measurements
    from kpdev.host.evaluation.report import write_report

    docs = [read_measurements(f) for f in files]
    if profile_file:
        try:
            prof = json.loads(profile_file.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read profile {profile_file}: {e}")
        docs[0]["results"]["profile"] = prof
    made = write_report(docs, out_dir)
    if json_:
        emit({k: [str(f) for f in v] if isinstance(v, list) else str(v) for k, v in made.items()})
        return
    out.print(
        f"report written: {made['markdown']} and {made['html']} ({len(made['figures'])} figures)"
    )
