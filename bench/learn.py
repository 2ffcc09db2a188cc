"""Edge learning: 5-shot accuracy learned on the device against a host-trained classifier
(target: at least 0.9x its accuracy), and akida learning through the agent against akida's
in-process ``fit`` (reported).

Data: UEA BasicMotions (host/demo/basicmotions.npz), its predefined fold: 40 training and 40
held-out recordings of 4 classes.

(a) Accuracy.  Per learner, a pack built with ``build_learning_pack`` (starting empty):
``memory`` on the int8 pipeline (host/demo/basicmotions_pipeline.yml) on sim-mcu (the real
MicroPython agent) and on sim-linux (the CPython agent), ``akida`` on the 8-level thermometer
pipeline (host/demo/basicmotions_binary.yml) on sim-linux (akida's software engine).  Per seed,
``learn_reset`` and then ``run_session(shots=5, rounds=1, seed=s)``: 5 training recordings per
class taught over the link as raw windows (the device runs the pipeline), then the 40 held-out
recordings classified on the device.  Baseline: the demo's MLP (host/demo/basicmotions_mlp.tflite,
trained on the whole training fold) on the same 40 held-out recordings, run in this process with
the host reference runtime; verdict: mean device accuracy over the seeds / the MLP's.  For the
record, a scikit-learn LogisticRegression on the whole training fold's int8 features, and the
host reference learner (``ReferenceLearner``, the device's own learner code in this process)
taught the same shots in the same batches: its accuracy must equal the device's.

(b) Learning throughput.  All 40 training recordings taught to the akida learner on sim-linux
with ``client.learn`` in batches as ``run_session`` makes them (as many raw windows as fit a
frame), ``learn_reset`` before each round, against ``akida.Model.fit`` in this process on the
same 40 samples already encoded (uint8 [40, 1, 1, 384], one batch) on a fresh copy of the pack's
model each round.  The LEARN request also carries raw windows that the agent runs through the
pipeline, and it predicts each sample's class before fitting it, so the same three steps are
also timed in this process with the device's code (``kpdev.device.pipeline.Pipeline``, the akida
backend's ``predict_classes`` and ``fit``): link against that is what the link itself costs.
The in-process steps run on the agent's CPU (this process moves there for them while the
agent is idle), so both sides of these ratios run on the same core.  Both ratios are reported
against 0.9x (bench/backends.py's target for agent against direct), for the record.  ROUNDS
alternating rounds (``_common.Rounds``); each verdict judges the per-round ratios (median, IQR,
NOISY when the target falls inside the IQR).  The accuracy verdicts are exact: fixed seeds and
deterministic code give the same figure on every run.  The memory learner's rate on sim-mcu
over the link (one window per frame at its 2 KB payload) and its pipeline time on the device
(PROFILE_RUN) are reported for information.

The host runs on one CPU, each agent on the other (see _common.py).

Run: python bench/learn.py               (both, about 15 s)
     python bench/learn.py accuracy      (a) only
     python bench/learn.py throughput    (b) only
"""

import contextlib
import os
import sys
import time

import _common
import numpy as np

from kpdev.host import features
from kpdev.host.client.client import Client
from kpdev.host.datasets import load_dataset
from kpdev.host.evaluation.evaluate import frame_batch
from kpdev.host.learning.session import plan_session, run_session
from kpdev.host.link.transport import PipeLink
from kpdev.host.packs.deploy import deploy_pack
from kpdev.host.packs.learner import build_learning_pack
from kpdev.host.packs.pack import read_pack
from kpdev.host.runtime.reference import ReferenceLearner, load_reference

TARGET = 0.9
SHOTS = 5
SEEDS = range(10)
ROUNDS = 15  # alternating throughput rounds (at least _common.MIN_ROUNDS)
DEMO = os.path.join(_common.REPO, "host", "demo")
CASES = [  # (board, learner, pipeline file)
    ("sim-mcu", "memory", "basicmotions_pipeline.yml"),
    ("sim-linux", "memory", "basicmotions_pipeline.yml"),
    ("sim-linux", "akida", "basicmotions_binary.yml"),
]


def has_akida():
    try:
        import akida  # noqa: F401
    except ImportError:
        return False
    return True


def spec_of(name):
    return features.load_spec(os.path.join(DEMO, name))


def build_pack(learner, spec_name, dataset):
    """An empty learner pack under the private KPDEV_HOME; the Pack."""
    path = os.path.join(_common.HOME, "%s.kp" % learner)
    if not os.path.exists(path):
        build_learning_pack(
            path, learner=learner, pipeline=spec_of(spec_name), dataset=dataset, name=learner
        )
    return read_pack(path)


def model_inputs(spec, windows):
    """The pipeline's outputs of raw windows, each shaped as the learner's input."""
    shape = list(features.out_shape(spec))
    return [x.reshape(shape) for x in features.transform_batch(spec, windows)]


@contextlib.contextmanager
def device(board):
    """A client to a fresh simulated board's agent on pipes (agent pinned to the peer CPU)."""
    proc = _common.start_agent(board)
    client = Client(PipeLink(proc, timeout=5.0), None, timeout=120.0)
    try:
        client.hello()
        yield client
    finally:
        client.close()
        _common.stop(proc)


# -- (a) accuracy -------------------------------------------------------------------------------
def host_baselines(dataset):
    """(MLP accuracy, LogisticRegression accuracy or None) on the held-out fold."""
    spec = spec_of("basicmotions_pipeline.yml")
    train, test = dataset.split()
    with open(os.path.join(DEMO, "basicmotions_mlp.tflite"), "rb") as f:
        mlp = load_reference("tflite", f.read(), None, None)
    try:
        xs = model_inputs(spec, features.raw_input(spec, test.x))
        got = [int(np.argmax(mlp.run([x])[0])) for x in xs]
    finally:
        mlp.close()
    acc_mlp = float(np.mean(np.array(got) == test.y))
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return acc_mlp, None
    xtr = features.transform_batch(spec, features.raw_input(spec, train.x)).reshape(len(train), -1)
    xte = features.transform_batch(spec, features.raw_input(spec, test.x)).reshape(len(test), -1)
    lr = LogisticRegression(max_iter=2000).fit(xtr.astype(np.float64), train.y)
    return acc_mlp, float(lr.score(xte.astype(np.float64), test.y))


def reference_accuracy(pack, dataset, seed, batch):
    """Accuracy of the host reference learner taught the session's shots in ``batch``es."""
    spec = pack.manifest["pipeline"]
    ref = ReferenceLearner(pack)
    try:
        plan = plan_session(pack, ref.labels, dataset, shots=SHOTS, rounds=1, seed=seed)
        train, test = plan["train"], plan["test"]
        idx = plan["rounds"][0]
        xs = model_inputs(spec, features.raw_input(spec, train.x[idx]))
        ys = [ref.labels.index(train.classes[int(train.y[i])]) for i in idx]
        for at in range(0, len(ys), batch):
            ref.learn(xs[at : at + batch], ys[at : at + batch])
        test_xs = model_inputs(spec, features.raw_input(spec, test.x))
        got = [ref.classify(x)[1] for x in test_xs]
        return float(
            np.mean([g == test.classes[int(t)] for g, t in zip(got, test.y, strict=True)])
        )
    finally:
        ref.close()


def bench_accuracy(dataset):
    acc_mlp, acc_lr = host_baselines(dataset)
    print(
        "\n(a) %d-shot accuracy learned on the device, %d seeds, against the host-trained MLP "
        "(whole training fold): MLP %.3f%s on the %d held-out recordings"
        % (
            SHOTS,
            len(SEEDS),
            acc_mlp,
            "" if acc_lr is None else ", LogisticRegression %.3f" % acc_lr,
            len(dataset.split()[1]),
        )
    )
    rows = []
    results = {}
    for board, learner, spec_name in CASES:
        if learner == "akida" and not has_akida():
            print("SKIP %s on %s: akida is not installed" % (learner, board))
            continue
        pack = build_pack(learner, spec_name, dataset)
        accs, refs, learn_ms = [], [], []
        t0 = time.perf_counter()
        with device(board) as client:
            deploy_pack(client, pack, None)
            spec = pack.manifest["pipeline"]
            one = np.asarray(features.raw_input(spec, dataset.x[:1])[0])
            batch = min(SHOTS * len(pack.learning["classes"]), frame_batch(client, one, None))
            for seed in SEEDS:
                client.learn_reset()
                log = run_session(client, pack, dataset, shots=SHOTS, rounds=1, seed=seed)
                last = log["rows"][-1]
                accs.append(last["accuracy"])
                learn_ms.append(last["learn_ms_per_sample"])
                refs.append(reference_accuracy(pack, dataset, seed, batch))
        seconds = time.perf_counter() - t0
        same = sum(a == r for a, r in zip(accs, refs, strict=True))
        mean = float(np.mean(accs))
        results[(board, learner)] = mean / acc_mlp
        rows.append(
            [
                "%s on %s" % (learner, board),
                "%.3f" % mean,
                "%.3f-%.3f" % (min(accs), max(accs)),
                "%.3f" % float(np.mean(refs)),
                "%d/%d" % (same, len(accs)),
                "%.3f" % (mean / acc_mlp),
                "%d" % batch,
                "%.1f" % _common.median(learn_ms),
                "%.1f s" % seconds,
            ]
        )
    print()
    _common.table(
        [
            "learner",
            "device acc",
            "range",
            "host ref acc",
            "ref == device",
            "vs MLP",
            "shots/request",
            "ms/shot",
            "took",
        ],
        rows,
    )
    for (board, learner), ratio in results.items():
        _common.judge(
            "RATIO",
            "learn_%dshot_%s_%s_vs_host_mlp" % (SHOTS, learner, board.replace("-", "_")),
            [ratio],
            "x",
            TARGET,
            at_most=False,
            note="mean of %d fixed seeds" % len(SEEDS),
            exact=True,
        )


# -- (b) throughput -----------------------------------------------------------------------------
def teach_all(client, windows, ys, batch):
    """Seconds to teach every window over the link, ``batch`` to a LEARN request."""
    client.learn_reset()
    t0 = time.perf_counter()
    for at in range(0, len(ys), batch):
        client.learn(list(windows[at : at + batch]), ys[at : at + batch])
    return time.perf_counter() - t0


def fresh_akida(data):
    """A new akida.Model of the pack's learner model, loaded from a file as a user would."""
    import tempfile

    import akida

    with tempfile.NamedTemporaryFile(suffix=".fbz", dir=_common.HOME, delete=False) as f:
        f.write(data)
    model = akida.Model(f.name)
    os.unlink(f.name)
    return model


def agent_work(data, spec, windows, ys):
    """Seconds of what the agent's LEARN does, run in this process with the device's code:
    (pipeline of every window, predict_classes of the batch, fit of the batch)."""
    from kpdev import accelerators
    from kpdev.accelerators.ndarray import array_of, tensor_of
    from kpdev.device.pipeline import Pipeline

    pipeline = Pipeline(spec)
    loaded = accelerators.get("akida").load(data, {"output": "forward"})
    try:
        tensors = [tensor_of(np.ascontiguousarray(w)) for w in windows]
        t0 = time.perf_counter()
        vectors = [pipeline.transform(t) for t in tensors]
        t1 = time.perf_counter()
        batch = [tensor_of(np.concatenate([array_of(v) for v in vectors]))]
        t2 = time.perf_counter()
        loaded.predict_classes(batch)
        t3 = time.perf_counter()
        loaded.fit(batch, ys)
        t4 = time.perf_counter()
    finally:
        loaded.close()
    return t1 - t0, t3 - t2, t4 - t3


def bench_throughput(dataset):
    train, _ = dataset.split()
    n = len(train)
    ys = [int(y) for y in train.y]
    print(
        "\n(b) learning throughput: %d training recordings taught, %d alternating rounds"
        % (n, ROUNDS)
    )
    rows = []
    ratio = None
    if has_akida():
        pack = build_pack("akida", "basicmotions_binary.yml", dataset)
        spec = pack.manifest["pipeline"]
        windows = features.raw_input(spec, train.x)
        bits = np.ascontiguousarray(features.transform_batch(spec, windows)).astype(np.uint8)
        labels = np.array(ys, np.int32)
        data = pack.model_bytes(pack.learning["model"])
        parts = []

        def fit_once():
            model = fresh_akida(data)
            with _common.on_peer_cpu():
                t0 = time.perf_counter()
                model.fit(bits, labels)
                return time.perf_counter() - t0

        def work_once():
            with _common.on_peer_cpu():
                parts.append(agent_work(data, spec, windows, ys))
            return sum(parts[-1])

        with device("sim-linux") as client:
            deploy_pack(client, pack, None)
            batch = min(n, frame_batch(client, np.asarray(windows[0]), None))
            cases = {
                "link": lambda: teach_all(client, windows, ys, batch),
                "fit": fit_once,
                "work": work_once,
            }
            rounds = _common.Rounds(cases).run(ROUNDS)
        parts = parts[-ROUNDS:]  # the warm-up round's is not recorded
        # seconds per round: link throughput / in-process throughput = in-process s / link s
        ratio = rounds.ratio("fit", "link")
        same_work = rounds.ratio("work", "link")
        rows.append(["akida on sim-linux: LEARN over the link", rounds.values["link"], batch])
        rows.append(["akida.Model.fit in this process (encoded input)", rounds.values["fit"], n])
        for k, name in enumerate(("device pipeline", "predict_classes", "fit")):
            rows.append(["  agent's work in this process: %s" % name, [p[k] for p in parts], n])
    pack = build_pack("memory", "basicmotions_pipeline.yml", dataset)
    windows = features.raw_input(pack.manifest["pipeline"], train.x)
    with device("sim-mcu") as client:
        deploy_pack(client, pack, None)
        batch = min(n, frame_batch(client, np.asarray(windows[0]), None))
        teach_all(client, windows, ys, batch)  # warm-up
        mem_s = [teach_all(client, windows, ys, batch) for _ in range(_common.MIN_ROUNDS)]
        profile = client.profile(windows[0], runs=10)
    rows.append(["memory on sim-mcu: LEARN over the link", mem_s, batch])
    print()
    _common.table(
        ["case", "ms per sample, per round", "median samples/s", "per call"],
        [
            [
                name,
                _common.summary([1000 * t / n for t in secs], "%.3f"),
                "%.0f" % (n / _common.median(secs)),
                per,
            ]
            for name, secs, per in rows
        ],
    )
    if ratio is None:
        print("SKIP akida throughput: akida is not installed")
    else:
        _common.judge(
            "RESULT",
            "learn_akida_link_vs_inprocess_fit",
            ratio,
            "x",
            TARGET,
            at_most=False,
            note="for the record: the link carries raw windows, the agent runs the pipeline",
        )
        _common.judge(
            "RESULT",
            "learn_akida_link_vs_agent_work_inprocess",
            same_work,
            "x",
            TARGET,
            at_most=False,
            note="the same pipeline, predict and fit in this process: what the link adds",
        )
    stages = {st["name"]: st["us"] for st in profile["stages"]}
    print(
        "memory on sim-mcu: %.0f samples/s over the link (median of %d rounds, for the record); "
        "PROFILE_RUN of one window on the device: pipeline %.0f us, learner classify %.0f us"
        % (
            n / _common.median(mem_s),
            len(mem_s),
            sum(us for name, us in stages.items() if name != "learner"),
            stages.get("learner", 0.0),
        )
    )


def main():
    _common.pin_host()
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which not in ("all", "accuracy", "throughput"):
        print("usage: python bench/learn.py [accuracy|throughput]")
        return 2
    print("edge learning (%s)" % _common.machine())
    _common.load_line("start")
    dataset = load_dataset(os.path.join(DEMO, "basicmotions.npz"))
    if which in ("all", "accuracy"):
        bench_accuracy(dataset)
    if which in ("all", "throughput"):
        bench_throughput(dataset)
    _common.load_line("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
