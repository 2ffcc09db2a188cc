"""``kpdev eval``, ``kpdev profile``, ``kpdev recognize``: packs and models on a device, measured.

The work is in ``kpdev.host.evaluation``; these commands parse, call it and render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kpdev.host.atomic import refuse_existing, write_atomic
from kpdev.host.cli.fleet import selected
from kpdev.host.cli.options import (
    BoardOpt,
    BoardsOpt,
    DatasetOpt,
    FleetOpt,
    ForceOpt,
    FractionOpt,
    JsonOpt,
    KeyOpt,
    PlaceOpt,
    PortOpt,
    PortsOpt,
    SeedOpt,
    TimeoutOpt,
    WindowOpt,
    emit,
    err,
    out,
    parse_window,
    session,
    single,
)
from kpdev.host.errors import UsageError
from kpdev.host.plain import jsonable
from kpdev.protocol.formats import EXTENSIONS


# -- eval ----------------------------------------------------------------------------------
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
    input_scale: Annotated[
        str | None,
        typer.Option(
            "--input-scale",
            help="Multiply each sample by this (1/16 or 0.0625) before it is quantized for a "
            "model that takes samples directly, e.g. 1/16 for digits' pixels 0-16 into a model "
            "trained on 0-1. Default: the samples as they are.",
            show_default=False,
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Measurements JSON to write; default kpdev-eval-NAME-BOARD.json here (on a "
            "fleet kpdev-fleet-NAME.json). An existing file is kept unless --force.",
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="A name for this run, kept in the measurements; kpdev report heads the run "
            "and its comparison column with it. Default: the board and the pack.",
            show_default=False,
        ),
    ] = None,
    board: BoardsOpt = None,
    port: PortsOpt = None,
    fleet: FleetOpt = None,
    place: PlaceOpt = None,
    shard: Annotated[
        bool,
        typer.Option(
            "--shard/--each",
            help="On a fleet: --each (default) evaluates the whole test split on every board "
            "and compares them; --shard splits it across the boards in small chunks (fast "
            "boards take more, a failed board's chunk goes to another) and merges the results "
            "in sample order.",
        ),
    ] = False,
    chunk: Annotated[
        int,
        typer.Option("--chunk", help="--shard: samples a chunk of the shared queue.", min=1),
    ] = 8,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Evaluate a pack or model on the device against a dataset's test split.

    Streams the test samples through the device (batched and pipelined), then reports accuracy,
    per-class precision/recall/F1 (macro F1 over the classes in the test data), the confusion
    matrix, on-device latency (mean/p50/p99), link bytes and, where the board reports it, energy
    per inference, throughput, the device's memory and storage after the run and the host's
    load; writes a measurements file that `kpdev report` turns into a report.

    Test samples of a class a pack does not know are left out and counted (a warning on stderr,
    `skipped` in the measurements); none known is refused. Samples quantized on the host for a
    model's input are checked against its range: values that saturate are counted (a warning,
    `input_quantization`); --input-scale rescales them first. A bare model names no classes:
    its output k is taken as the dataset's k-th class (a note, `class_order`), and a model with
    a different number of outputs than the dataset has classes is refused.

    On several boards (--board repeated, sim-mcu*3, --fleet, --place) all run at once, with one
    progress line a board: --each or --shard (see there). A board that stops answering is
    marked failed with the reason and the run goes on: with --shard its unfinished chunk goes
    to another board, with --each its results are reported missing. Writes one fleet
    measurements file (default kpdev-fleet-NAME.json) that kpdev report turns into a table
    across boards; exits non-zero only when no board finished (or, with --shard, samples are
    left undone).
    """
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.client.session import resolve_board
    from kpdev.host.evaluation.evaluate import eval_document, put_on_device
    from kpdev.host.evaluation.metrics import write_measurements

    win = parse_window(window)
    factor = parse_scale(input_scale) if input_scale is not None else None
    if out_file is not None:  # before the run, not after it
        refuse_existing(out_file, force, "measurements file")
    one = single(board, port, fleet, place)
    if one is None:
        from kpdev.host.cli.fleet_eval import eval_fleet

        eval_fleet(
            target, selected(board, port, fleet, place), dataset=dataset, win=win,
            test_fraction=test_fraction, seed=seed, limit=limit, batch=batch,
            in_flight=requests, input_scale=factor, out_file=out_file, force=force,
            label=label, shard=shard, chunk=chunk, key=key, timeout=timeout, json_=json_,
        )  # fmt: skip
        return
    board, port = one
    b = resolve_board(board, port)
    pack, ds, test, skipped = load_test(target, dataset, win, test_fraction, seed, limit)
    with session(board, port, key, timeout) as c:
        name = pack.name if pack is not None else target.stem
        path = out_file or Path(f"kpdev-eval-{name}-{c.device.get('board')}.json")
        refuse_existing(path, force, "measurements file")
        on = put_on_device(
            c, test.x, ds.classes, pack=pack, model_file=target, board=b,
            where=f"dataset {dataset}", input_scale=factor,
        )  # fmt: skip
        if on.class_order:
            err.print(
                f"note: model {on.name} names no classes; its output k is taken as class k of "
                f"the dataset ({', '.join(on.classes)}), an assumption: a pack names them "
                "(kpdev pack build -c)"
            )
        sat = on.quantization
        if sat and sat["saturated"]:
            err.print(
                f"warning: {sat['saturated']} of {sat['values']} input values saturate the "
                f"model's {sat['dtype']} input (scale {sat['scale']:.6g}, zero point "
                f"{sat['zero_point']}): the samples are outside the range it was trained on; "
                "scale them with --input-scale"
            )
        with progress_bar(
            not json_, f"eval {on.name} on {c.device.get('board')}", len(test)
        ) as progress:
            doc = eval_document(
                c, b, on, test, pack=pack, target=target, skipped=skipped, label=label,
                progress=progress,
                inputs={
                    "dataset": dataset, "window": win, "batch": batch, "in_flight": requests,
                    "input_scale": factor, "seed": seed, "test_fraction": test_fraction,
                },
            )  # fmt: skip
        link = c.link_report()
    write_measurements(doc, path)
    if json_:
        emit(dict(doc, path=str(path), link=link))
        return
    print_results(doc, out)
    out.print(f"measurements written to {path}")


def load_test(target: Path, dataset, win, test_fraction, seed: int, limit):
    """What ``kpdev eval`` evaluates on, on one board or a fleet: the pack (None for a bare
    model), the dataset, its test split and the test samples of classes the pack does not know
    (left out, with a warning on stderr)."""
    from kpdev.host.evaluation.evaluate import known_only, test_split
    from kpdev.host.packs.pack import read_pack

    pack = read_pack(target) if target.suffix == ".kp" else None
    pipeline = pack.manifest.get("pipeline") if pack else None
    ds, test = test_split(dataset, win, test_fraction, seed, pipeline, limit)
    skipped: dict[str, int] = {}
    if pack is not None:
        test, skipped = known_only(test, pack.classes())
        if skipped:
            err.print(
                f"warning: {sum(skipped.values())} test samples left out, of classes pack "
                f"{pack.name} does not know: "
                + ", ".join(f"{label} ({n})" for label, n in skipped.items())
            )
    return pack, ds, test, skipped


def parse_scale(text: str) -> float:
    """``--input-scale``: a positive number, or a fraction like 1/16."""
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UsageError(f"--input-scale {text!r}: give a positive number or fraction, e.g. 1/16")
    return value


def print_results(doc: dict, console) -> None:
    """The tables of an eval measurements document."""
    from rich.table import Table

    from kpdev.host.evaluation.metrics import clock_note

    r = doc["results"]
    cl = r["classification"]
    lat = r["latency_us"]
    what = (doc.get("pack") or doc.get("model") or {}).get("name")
    console.print(
        f"[bold]{what}[/bold] on {doc['board']['name']}: accuracy [bold]{cl['accuracy']:.3f}"
        f"[/bold] ({cl['n']} samples), macro F1 {cl['macro_f1']:.3f} "
        f"(over the {len(cl['macro_f1_classes'])} classes in the test data)"
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
        method = energy.get("method") or ("estimated" if energy.get("estimated") else "")
        e_text = f"{energy['uj_per_inference']:.1f} µJ" + (f" ({method})" if method else "")
    console.print(
        f"on-device latency µs: mean {lat['mean']:.0f}, p50 {lat['p50']:.0f}, p99 {lat['p99']:.0f}"
        f" · link {link['per_inference']:.0f} B/sample (batch {link['batch']}, "
        f"{link['window']} in flight) · energy/inference {e_text} · {r['wall_s']:.1f} s"
    )
    note = clock_note(doc["board"].get("clock"))
    if note:
        console.print(f"note: {note}")
    tp = r.get("throughput") or {}
    if tp.get("device_per_s") and tp.get("wall_per_s"):
        console.print(
            f"throughput: {tp['device_per_s']:.1f} inferences/s of device time, "
            f"{tp['wall_per_s']:.1f}/s of wall time (link and host included)"
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
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the recognition JSON here, for kpdev report (an existing file is "
            "kept unless --force).",
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
    """Run a raw recording through a pack's pipeline and models; print the class of each window.

    With labels in the recording, each window's true class is the majority label of its samples
    and a confusion matrix follows. Windows of a class the pack does not know are left out of
    the score and counted (`skipped`), as kpdev eval does. --out keeps the result for kpdev
    report.
    """
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.client.session import resolve_board
    from kpdev.host.datasets import load_signal
    from kpdev.host.evaluation.recognize import recognize as run
    from kpdev.host.packs.pack import read_pack

    if platform not in ("device", "host"):
        raise UsageError(f"--platform {platform!r}: use device or host")
    if out_file is not None:
        refuse_existing(out_file, force, "recognition file")
    pack = read_pack(pack_path)
    sig = load_signal(str(signal), label_column=label_column)
    if platform == "host":
        doc = run(pack, sig, None)
    else:
        from kpdev.host.packs.deploy import deploy_pack as run_deploy

        b = resolve_board(board, port)
        with session(board, port, key, timeout) as c:
            run_deploy(c, pack, b)
            with progress_bar(not json_, f"recognize on {c.device.get('board')}") as progress:
                doc = run(pack, sig, c, progress)
    doc["signal"] = str(signal)
    if out_file:
        text = json.dumps(jsonable(doc), indent=2) + "\n"
        write_atomic(out_file, lambda f: f.write(text.encode("utf-8")))
    if json_:
        emit(doc)
        return
    print_windows(doc)


def print_windows(doc: dict) -> None:
    """The per-window table (and confusion) of a recognition."""
    from rich.table import Table

    rows = doc["windows"]
    truth = any(r["label"] for r in rows)
    report = doc["classification"]
    skipped = doc.get("skipped") or {}
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
            if r["label"] in skipped:
                cells.append(f"[dim]{r['label']} (not scored)[/dim]")
            else:
                ok = r["label"] == r["class"]
                cells.append(r["label"] if ok else f"[red]{r['label']}[/red]")
        t.add_row(*cells)
    out.print(t)
    if skipped:
        out.print(
            f"{sum(skipped.values())} windows left out of the score, of classes pack "
            f"{doc['pack']} does not know: "
            + ", ".join(f"{label} ({n})" for label, n in skipped.items())
        )
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
    runs: Annotated[int, typer.Option("--runs", "-n", help="Timed runs.", min=1, max=10000)] = 20,
    warmup: Annotated[
        int,
        typer.Option(
            "--warmup",
            help="Untimed runs first (caches, allocation), not counted.",
            min=0,
            max=10000,
        ),
    ] = 2,
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
    board: BoardsOpt = None,
    port: PortsOpt = None,
    fleet: FleetOpt = None,
    place: PlaceOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 60.0,
    json_: JsonOpt = False,
) -> None:
    """Time each stage on the device: every feature generator, scaling, each model.

    Runs the pack's first test vector (its raw window) WARMUP times untimed, then RUNS times on
    the device, and prints each stage's median and p10-p90 microseconds, its mean and its share
    of the mean total; "other" is what the whole classification took beyond its stages, so the
    shares add up to 100 %. Feature stages are named feature:GENERATOR (feature:std is the time
    of the std feature). MicroPython and CPython expose no cycle counter here: times are in µs.

    On several boards (--board repeated, sim-mcu*3, --fleet, --place) all are profiled at once:
    one row a board (its total and largest stage); --json gives every board's profile.
    """
    from kpdev.host.client.session import resolve_board
    from kpdev.host.evaluation.evaluate import profile_pack
    from kpdev.host.packs.deploy import deploy_pack as run_deploy
    from kpdev.host.packs.pack import read_pack

    if out_file is not None:
        refuse_existing(out_file, force, "profile file")
    one = single(board, port, fleet, place)
    if one is None:
        if out_file is not None:
            raise UsageError("--out writes one board's profile; on a fleet use --json")
        from kpdev.host.cli.fleet import profile_fleet

        sel = selected(board, port, fleet, place)
        profile_fleet(pack_path, sel, runs=runs, warmup=warmup, key=key, timeout=timeout,
                      json_=json_)  # fmt: skip
        return
    board, port = one
    pack = read_pack(pack_path) if pack_path else None
    b = resolve_board(board, port)
    with session(board, port, key, timeout) as c:
        if pack is not None:
            run_deploy(c, pack, b)
        doc = profile_pack(c, pack, runs, warmup)
    if out_file:
        text = json.dumps(jsonable(doc), indent=2) + "\n"
        write_atomic(out_file, lambda f: f.write(text.encode("utf-8")))
    if json_:
        emit(doc)
        return
    print_profile(doc)


def print_profile(doc: dict) -> None:
    """The per-stage table of a profile, and a note when its runs spread widely."""
    from rich.table import Table

    from kpdev.host.evaluation.metrics import clock_note, instructions

    total = doc["total"]
    t = Table(
        title=f"{doc['pack']} on {doc['board']} ({doc['runtime']}): {doc['runs']} runs after "
        f"{doc['warmup']} warm-up",
        title_justify="left",
    )
    clock = doc.get("clock")
    virtual = clock_note(clock) is not None
    unit = "virtual µs" if virtual else "µs"
    cols = ("stage", f"median {unit}", f"p10-p90 {unit}", f"mean {unit}", "share of mean")
    for col in cols + (("mean instructions",) if virtual else ()):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for s in doc["stages"] + [doc["other"]]:
        t.add_row(
            s["name"],
            f"{s['median']:.1f}",
            f"{s['p10']:.1f}-{s['p90']:.1f}",
            f"{s['us']:.1f}",
            f"{s['share']:.1f} %",
            *([f"{instructions(s['us'], clock):,.0f}"] if virtual else []),
        )
    t.add_row(
        "[bold]total[/bold]",
        f"[bold]{total['median']:.1f}[/bold]",
        f"{total['p10']:.1f}-{total['p90']:.1f}",
        f"{total['us']:.1f}",
        "100.0 %",
        *([f"{instructions(total['us'], clock):,.0f}"] if virtual else []),
    )
    out.print(t)
    if virtual:
        out.print(f"note: {clock_note(clock)}")
    if doc["noisy"]:
        err.print(
            f"note: the total spreads over {doc['spread'] * 100:.0f} % of its median between "
            f"runs (p10 {total['p10']:.0f} µs, p90 {total['p90']:.0f} µs): the board, or the "
            "host a simulated board runs on, was busy; read the medians, or profile again with "
            "more --runs on a quiet machine"
        )
