"""R3: SIGKILL at random points of the operations that write the store, then a restart that must
find it whole.

For each runtime (sim-linux on CPython, sim-mcu on MicroPython), ``--kills`` times: the agent
starts on the board's state folder, one operation is sent (chosen at random: an upload with its
commit, a commit alone, a PACK_SET, a LEARN_SAVE), and the agent is killed with SIGKILL after a
random delay within that operation's own measured duration.  After each kill the agent starts
again and the run checks, from the agent's answers and from its files:

- every stored model's file is whole (its size and sha256 are the index's);
- no stray blob is left beside the index;
- INFO's ``storage.used`` equals the stored models plus the uploads in progress (the quota);
- an upload in progress resumes: MODEL_BEGIN of the same bytes answers an offset no larger than
  its size, the held prefix is the model's own, and finishing it commits the exact sha256;
- the active pack, when there is one, names stored models;
- the learner state, when saved, is restored whole or not at all.

Run: python bench/kills.py [--kills N] [--seed S] [BOARD ...]   (default: 100, sim-linux sim-mcu)
Prints per board: kills, restarts whole, inconsistencies (listed), and the operations hit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import _common  # noqa: F401  (a private KPDEV_HOME)

from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import SimBoard, state_dir
from kpdev.host.client.client import Client
from kpdev.host.packs.deploy import deploy_pack
from kpdev.host.packs.pack import device_pack, read_pack, store_name
from kpdev.host.runtime import modelgen
from kpdev.protocol import ops
from kpdev.protocol.errors import KpdevError

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "host" / "demo"


def models_for(board) -> list[bytes]:
    # Big enough that hashing one at commit takes a while on the board, small enough to store
    # two beside the pack's models.
    hidden = (384, 384) if board.runtime == "micropython" else (512, 512)
    return [modelgen.dense_int8(hidden=hidden, seed=s) for s in (1, 2)]


def check(state: Path, client: Client) -> list[str]:
    """What is wrong with the store after a restart (empty: whole)."""
    problems = []
    root = state / "models"
    index = json.loads((root / "index.json").read_text())
    for name, e in index["models"].items():
        blob = (root / "blobs" / e["file"]).read_bytes()
        if len(blob) != e["size"] or hashlib.sha256(blob).hexdigest() != e["sha256"]:
            problems.append(f"model {name} torn")
    named = {e["file"] for e in index["models"].values()}
    strays = {p.name for p in (root / "blobs").iterdir()} - named
    if strays:
        problems.append(f"stray blobs {sorted(strays)}")
    uploads = 0
    for desc in (root / "upload").glob("*.json"):
        uploads += json.loads(desc.read_text())["size"]
    used = client.info()["storage"]["used"]
    want = sum(e["size"] for e in index["models"].values()) + uploads
    if used != want:
        problems.append(f"quota counts {used} B for {want} B held")
    pack = client.pack_get()
    if pack:
        missing = [m["model"] for m in pack["models"] if m["model"] not in index["models"]]
        if missing:
            problems.append(f"active pack names missing models {missing}")
    return problems


def resume(state: Path, client: Client, name: str, data: bytes) -> list[str]:
    """An upload of ``data`` under ``name`` left in progress resumes and commits exactly."""
    begun = client.request(
        ops.MODEL_BEGIN,
        {"name": name, "format": "tflite", "size": len(data),
         "sha256": hashlib.sha256(data).digest()},
    )  # fmt: skip
    held = int(begun["offset"])
    part = state / "models" / "upload" / f"{name}.part"
    problems = []
    if held > len(data) or (part.exists() and part.read_bytes()[:held] != data[:held]):
        problems.append(f"upload {name} holds {held} B that are not the model's")
    done = client.upload(name, data, "tflite", activate=False)
    if done["sha256"] != hashlib.sha256(data).hexdigest():
        problems.append(f"upload {name} committed another sha256")
    return problems


class Run:
    def __init__(self, board_id: str, seed: int):
        self.board = get_board(board_id)
        self.state = state_dir(self.board)
        self.rng = random.Random(seed)
        self.models = models_for(self.board)
        self.pack = read_pack(self.learner_pack())
        self.durations: dict[str, float] = {}
        self.hits: dict[str, int] = {}
        self.problems: list[str] = []
        self.whole = 0

    def learner_pack(self) -> Path:
        out = Path(os.environ["KPDEV_HOME"]) / "learn.kp"
        if not out.exists():
            from kpdev.host.cli.app import main as cli

            argv = sys.argv
            sys.argv = [
                "kpdev", "pack", "build", str(out), "--pipeline",
                str(DEMO / "basicmotions_pipeline.yml"), "--dataset",
                str(DEMO / "basicmotions.npz"), "--learner", "memory", "-L", "per_class=8",
            ]  # fmt: skip
            try:
                cli()
            except SystemExit as e:
                if e.code:
                    raise
            finally:
                sys.argv = argv
        return out

    def start(self):
        agent = SimBoard(self.board)
        client = Client(agent.link(), timeout=60.0)
        client.hello()
        return agent, client

    def operation(self, client: Client, op: str) -> None:
        new = self.models[self.rng.randrange(2)]
        if op == "upload":
            client.upload("m", new, "tflite", activate=False)
        elif op == "commit":
            client.send_model("m", new, "tflite")
            client.commit("m", activate=False)
        elif op == "pack_set":
            names = {m["id"]: store_name(self.pack, m["id"]) for m in self.pack.models}
            client.pack_set(device_pack(self.pack, names))
        elif op == "learn_save":
            window = self.pack.vectors()[0]["window"]
            client.learn([window], [self.rng.randrange(4)])
            client.learn_save()

    def prepare(self, client: Client) -> None:
        if client.pack_get() is None:
            deploy_pack(client, self.pack, None)
        client.learn_enable(True)

    def one(self, op: str) -> None:
        agent, client = self.start()
        self.prepare(client)
        # The operation's own duration, once, so kills fall inside it.
        if op not in self.durations:
            t0 = time.perf_counter()
            self.operation(client, op)
            self.durations[op] = time.perf_counter() - t0
        delay = self.rng.uniform(0, self.durations[op])
        worker = threading.Thread(target=self._quietly, args=(client, op), daemon=True)
        worker.start()
        time.sleep(delay)
        os.kill(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait()
        worker.join(5)
        agent.stop()
        self.hits[op] = self.hits.get(op, 0) + 1
        agent, client = self.start()
        try:
            found = check(self.state, client)
            desc = self.state / "models" / "upload" / "m.json"
            if not found and desc.exists():
                want = json.loads(desc.read_text())["sha256"]
                data = next(m for m in self.models if hashlib.sha256(m).hexdigest() == want)
                found = resume(self.state, client, "m", data)
            info = client.learn_info()
            if info.get("ignored"):  # a saved state it would not restore: a torn save
                found.append(f"learner state not restored: {info['ignored']}")
        except KpdevError as e:
            found = [f"after the restart: {e}"]
        finally:
            client.close()
            agent.stop()
        if found:
            self.problems += [f"{op}: {p}" for p in found]
        else:
            self.whole += 1

    def _quietly(self, client: Client, op: str) -> None:
        try:
            self.operation(client, op)
        except Exception:
            pass  # the agent was killed under it


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("boards", nargs="*", default=["sim-linux", "sim-mcu"])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    failed = 0
    for board in args.boards:
        run = Run(board, args.seed)
        t0 = time.perf_counter()
        for i in range(args.kills):
            run.one(("upload", "commit", "pack_set", "learn_save")[i % 4])
        took = time.perf_counter() - t0
        print(
            f"{board}: {args.kills} SIGKILLs, {run.whole}/{args.kills} restarts whole, "
            f"{len(run.problems)} inconsistencies, {took:.0f} s; kills per operation "
            + ", ".join(f"{k} {v}" for k, v in sorted(run.hits.items()))
            + "; operation times "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(run.durations.items()))
        )
        for p in run.problems:
            print("  " + p)
        failed += bool(run.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
