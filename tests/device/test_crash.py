"""SIGKILL at the worst moments: after a restart the store holds whole models, never torn ones."""

import hashlib
import json
import time

import numpy as np
import pytest
from support.agents import SIM_BOARDS
from support.paths import sha256
from support.reference import reference

from kpdev.host.runtime import modelgen
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError

SMALL = {1: modelgen.dense_int8(seed=1), 2: modelgen.dense_int8(seed=2, hidden=40)}


def models_dir(agent):
    return agent.state / "models"


def stored(agent):
    """{name: entry} from the index on "flash", each blob checked whole against its sha."""
    root = models_dir(agent)
    assert not (root / "index.json.tmp").exists()
    index = json.loads((root / "index.json").read_text())
    for name, entry in index["models"].items():
        blob = (root / "blobs" / entry["file"]).read_bytes()
        assert len(blob) == entry["size"], name
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], name
    named = {e["file"] for e in index["models"].values()}
    assert {p.name for p in (root / "blobs").iterdir()} == named  # strays were swept
    return index["models"]


def check_model(agent, client, name, data):
    """The device lists ``name`` as exactly ``data``, and it infers as tflite_micro does (where
    the board has the heap to load it)."""
    info = client.model_info(name)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored(agent)[name]["sha256"] == hashlib.sha256(data).hexdigest()
    shape = info["io"]["inputs"][0]["shape"] if "io" in info else [1, 16]
    x = np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)
    if agent.micropython and len(data) > agent.board.ram_kb * 1024 // 4:
        # Bigger than the board's RAM can hold a layer of: the agent must say so cleanly.
        with pytest.raises(DeviceError) as e:
            client.infer(x, name)
        assert e.value.code == ops.E_MODEL_LOAD and "not enough memory" in e.value.message
    elif agent.board.id == "sim-mcu-64k":
        with pytest.raises(DeviceError) as e:
            client.infer(x, name)
        assert e.value.code == ops.E_MODEL_LOAD
    else:
        assert np.array_equal(client.infer(x, name)[0][0], reference(data, x))


def send_chunks(client, name, data, step, start=0):
    """MODEL_CHUNK frames for all of ``data`` from ``start``, sent without waiting for replies."""
    for at in range(start, len(data), step):
        client.send(ops.MODEL_CHUNK, {"name": name, "offset": at, "data": data[at : at + step]})


def begin(client, name, data):
    body = {"name": name, "format": "tflite", "size": len(data), "sha256": sha256(data)}
    return client.request(ops.MODEL_BEGIN, body)["offset"]


@pytest.mark.parametrize("board", SIM_BOARDS)
def test_killed_during_upload_restarts_with_the_old_model_whole(agents, board):
    old, new = SMALL[1], SMALL[2]
    agent = agents.start(board)
    client = agent.client()
    client.upload("m", old, "tflite")
    assert begin(client, "m", new) == 0
    send_chunks(client, "m", new, 256)
    agent.kill()  # chunks in flight, some written, maybe one half written

    agent = agents.start(board, state=agent.state)
    client = agent.client()
    check_model(agent, client, "m", old)
    held = begin(client, "m", new)
    part = (models_dir(agent) / "upload" / "m.part").read_bytes()
    assert held == len(part) <= len(new)
    assert part == new[:held]  # what was kept is a clean prefix, resumable as is
    done = client.upload("m", new, "tflite")
    assert done["resumed_from"] == held
    check_model(agent, client, "m", new)
    assert not list((models_dir(agent) / "upload").iterdir())


def big_models(board):
    """Two models big enough that hashing one at commit takes a while on this board."""
    hidden = {"sim-mcu-64k": (192, 192), "sim-mcu": (384, 384)}.get(board, (512, 512))
    return modelgen.dense_int8(hidden=hidden, seed=1), modelgen.dense_int8(hidden=hidden, seed=2)


@pytest.mark.parametrize("board", SIM_BOARDS)
def test_killed_during_commit_leaves_the_old_or_the_new_model_never_a_torn_one(agents, board):
    models = big_models(board)
    agent = agents.start(board)
    client = agent.client()
    client.upload("m", models[0], "tflite")
    current = models[0]
    # Kill at slightly different moments: before the commit is read, while the file is
    # hashed, around the renames.  Whatever the moment, one whole model must be there.
    for delay in (0.0, 0.0005, 0.001, 0.002, 0.005):
        new = models[1] if current is models[0] else models[0]
        assert begin(client, "m", new) == 0
        step = client.max_payload - 200
        for reply in client.pipeline(
            (ops.MODEL_CHUNK, {"name": "m", "offset": at, "data": new[at : at + step]})
            for at in range(0, len(new), step)
        ):
            assert reply["offset"] > 0
        client.send(ops.MODEL_COMMIT, {"name": "m"})
        if delay:
            time.sleep(delay)
        agent.kill()

        agent = agents.start(board, state=agent.state)
        client = agent.client()
        entry = stored(agent)["m"]
        assert entry["sha256"] in (hashlib.sha256(m).hexdigest() for m in models)
        if entry["sha256"] == hashlib.sha256(current).hexdigest():
            # The commit never happened: the upload is still there, or starts over.
            done = client.upload("m", new, "tflite")
            assert done["resumed_from"] in (0, len(new))
        current = new
        check_model(agent, client, "m", current)
        assert client.models()["active"] == "m"


@pytest.mark.parametrize("board", SIM_BOARDS)
def test_restart_cleans_a_temp_index_and_stray_blobs_but_keeps_uploads(agents, board):
    old, new = SMALL[1], SMALL[2]
    agent = agents.start(board)
    client = agent.client()
    client.upload("m", old, "tflite")
    begin(client, "m", new)
    client.request(ops.MODEL_CHUNK, {"name": "m", "offset": 0, "data": new[:300]})
    client.close()
    assert agent.stop() == 0

    root = models_dir(agent)
    (root / "index.json.tmp").write_text('{"models": {"m": {"file": "gone.bin"')  # torn
    (root / "blobs" / "0000000000000000.bin").write_bytes(b"stray")

    agent = agents.start(board, state=agent.state)
    client = agent.client()
    assert not (root / "index.json.tmp").exists()
    assert not (root / "blobs" / "0000000000000000.bin").exists()
    check_model(agent, client, "m", old)
    assert begin(client, "m", new) == 300
    client.close()
    assert agent.stop() == 0

    # Only the temp index is left (FAT: the old one removed, the rename never done).
    index = (root / "index.json").read_bytes()
    (root / "index.json").unlink()
    (root / "index.json.tmp").write_bytes(index)
    agent = agents.start(board, state=agent.state)
    client = agent.client()
    assert not (root / "index.json.tmp").exists()
    assert json.loads((root / "index.json").read_bytes()) == json.loads(index)
    check_model(agent, client, "m", old)


def crash_in_commit(agent, name, data):
    """The store as a kill inside MODEL_COMMIT leaves it, after the part file became the blob:
    the descriptor MODEL_BEGIN wrote (upload.begin's fields) is still there, the part is not."""
    desc = {
        "name": name,
        "format": "tflite",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "meta": {},
    }
    (models_dir(agent) / "upload" / (name + ".json")).write_text(json.dumps(desc))
    return desc["sha256"][:16] + ".bin"


def stored_bytes(agent):
    """Bytes of every file under the store's blobs and uploads: what the device really holds."""
    root = models_dir(agent)
    files = list((root / "blobs").iterdir()) + list((root / "upload").glob("*.part"))
    return sum(p.stat().st_size for p in files)


@pytest.mark.parametrize("board", SIM_BOARDS)
def test_killed_in_commit_after_the_index_counts_the_model_once(agents, board):
    data = SMALL[1]
    agent = agents.start(board)
    client = agent.client()
    client.upload("m", data, "tflite")
    client.close()
    assert agent.stop() == 0
    crash_in_commit(agent, "m", data)  # killed after the index was saved

    agent = agents.start(board, state=agent.state)
    client = agent.client()
    storage = client.info()["storage"]
    assert storage["used"] == stored_bytes(agent) == len(data)
    assert storage["free"] == storage["quota"] - len(data)
    assert not list((models_dir(agent) / "upload").iterdir())  # the descriptor is dropped
    # The device lists the model whole, with its sha256: a deploy's plan sees it is stored.
    listed = {m["name"]: m for m in client.models()["models"]}
    assert listed["m"]["sha256"] == hashlib.sha256(data).hexdigest()
    check_model(agent, client, "m", data)


@pytest.mark.parametrize("board", SIM_BOARDS)
def test_killed_in_commit_before_the_index_resumes_the_upload_whole(agents, board):
    old, new = SMALL[1], SMALL[2]
    agent = agents.start(board)
    client = agent.client()
    client.upload("m", old, "tflite")
    client.close()
    assert agent.stop() == 0
    blob = crash_in_commit(agent, "m", new)  # killed between the rename and the index
    (models_dir(agent) / "blobs" / blob).write_bytes(new)

    agent = agents.start(board, state=agent.state)
    client = agent.client()
    check_model(agent, client, "m", old)  # the index still names the old model
    assert client.info()["storage"]["used"] == stored_bytes(agent) == len(old) + len(new)
    done = client.upload("m", new, "tflite")
    assert done["resumed_from"] == len(new)  # nothing sent again
    check_model(agent, client, "m", new)
    assert client.info()["storage"]["used"] == stored_bytes(agent) == len(new)
