"""The model store on a real filesystem, under CPython and the real micropython binary."""

import hashlib

import pytest

from kpdev.protocol import ops

DRIVER = "store_driver.py"  # the ``impl`` fixture runs it under CPython and MicroPython

# --- commands -------------------------------------------------------------------------------

E_BAD_REQUEST = "E%d" % ops.E_BAD_REQUEST
E_NO_MODEL = "E%d" % ops.E_NO_MODEL
E_STORAGE_FULL = "E%d" % ops.E_STORAGE_FULL
E_CHECKSUM = "E%d" % ops.E_CHECKSUM
E_UPLOAD_STATE = "E%d" % ops.E_UPLOAD_STATE

V1 = bytes((i * 7 + 1) & 0xFF for i in range(450))
V2 = bytes((i * 13 + 5) & 0xFF for i in range(430))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def blob(b):
    return sha(b)[:16] + ".bin"


def hx(name):
    if isinstance(name, int):
        return "int:%d" % name
    return name.encode().hex() if name else "."


def d(b):
    return b.hex() if b else "."


class Script:
    """Driver commands, each with the answer it must get; ``check`` runs them on an impl."""

    def __init__(self, root, quota=1 << 20):
        self.root = str(root)
        self.lines = []
        self.want = []
        self.open(quota)

    def add(self, line, want):
        self.lines.append(line)
        self.want.append(want)
        return self

    def open(self, quota=1 << 20):
        return self.add("open %s %d" % (self.root, quota), "ok")

    def begin(self, name, data, want="0", fmt="tflite", size=None, digest=None):
        size = len(data) if size is None else size
        digest = hashlib.sha256(data).digest() if digest is None else digest
        return self.add("begin %s %s %d %s" % (hx(name), hx(fmt), size, d(digest)), want)

    def chunk(self, name, offset, data, want=None):
        want = str(offset + len(data)) if want is None else want
        return self.add("chunk %s %d %s" % (hx(name), offset, d(data)), want)

    def commit(self, name, want, activate=True):
        return self.add("commit %s %d" % (hx(name), 1 if activate else 0), want)

    def committed(self, name, data, active):
        """Commit ``name`` expecting it to hold ``data`` with ``active`` the active model."""
        return self.commit(name, "%s %d %s" % (sha(data), len(data), active), active == name)

    def upload(self, name, data, active=None, step=100):
        """A whole upload in ``step``-byte chunks and its commit."""
        self.begin(name, data)
        for at in range(0, len(data), step):
            self.chunk(name, at, data[at : at + step])
        return self.committed(name, data, active or name)

    def entry(self, name, data):
        """The index names ``data``'s sha and size, and the blob on disk hashes to it."""
        return self.add(
            "entry %s" % hx(name), "%s %d tflite disk=%s" % (sha(data), len(data), sha(data))
        )

    def named(self, cmd, name, want="ok"):
        return self.add("%s %s" % (cmd, hx(name)), want)

    def names(self, names, active):
        return self.add("names", "%s active=%s" % (",".join(names), active))

    def files(self, blobs=(), upload=(), index=True):
        top = "blobs,index.json,upload" if index else "blobs,upload"
        return self.add(
            "files", "blobs=%s upload=%s top=%s" % (",".join(sorted(blobs)), ",".join(upload), top)
        )

    def check(self, impl):
        got = list(zip(self.lines, impl.run(self.lines), strict=True))
        assert got == list(zip(self.lines, self.want, strict=True))


# --- tests ----------------------------------------------------------------------------------


def test_upload_commit_and_describe(impl, tmp_path):
    s = Script(tmp_path / "models").upload("m", V1).entry("m", V1).names(["m"], "m")
    s.add("used", "used=450 free=%d" % ((1 << 20) - 450))
    s.files([blob(V1)])
    s.open().entry("m", V1).names(["m"], "m")  # as after a restart
    s.check(impl)


def test_sha_mismatch_is_refused_and_the_old_model_kept(impl, tmp_path):
    s = Script(tmp_path / "models").upload("m", V1)
    s.begin("m", V2, digest=hashlib.sha256(V1[:430]).digest()).chunk("m", 0, V2)
    s.commit("m", E_CHECKSUM)
    s.entry("m", V1).names(["m"], "m").files([blob(V1)])
    s.commit("m", E_UPLOAD_STATE)  # the failed upload is gone: it must start over
    s.check(impl)


def test_quota_is_checked_before_anything_is_written(impl, tmp_path):
    s = Script(tmp_path / "models", 1000)
    s.begin("big", bytes(1001), E_STORAGE_FULL).files(index=False)
    s.begin("a", V1)  # its 450 bytes are held for it from now on
    s.begin("b", bytes(551), E_STORAGE_FULL).files(upload=["a.json", "a.part"], index=False)
    s.begin("b", bytes(550)).add("used", "used=1000 free=0")
    s.named("abort", "b").chunk("a", 0, V1).committed("a", V1, "a")
    # Replacing a model needs room for both: the old one stays valid until the commit.
    s.begin("a", V2, E_STORAGE_FULL, size=600).begin("a", V2)
    s.check(impl)


def test_quota_frees_up_after_abort_and_delete(impl, tmp_path):
    s = Script(tmp_path / "models", 1000)
    s.begin("a", bytes(900)).named("abort", "a")
    s.upload("b", V1, step=450).begin("c", bytes(900), E_STORAGE_FULL)
    s.named("delete", "b").begin("c", bytes(900)).add("used", "used=900 free=100")
    s.check(impl)


def test_resume_after_restart_with_the_same_sha(impl, tmp_path):
    s = Script(tmp_path / "models").upload("m", V1)
    s.begin("m", V2).chunk("m", 0, V2[:100]).chunk("m", 100, V2[100:200])
    s.open()  # the agent restarts
    s.entry("m", V1)  # until the new upload commits, the old model is the one stored
    s.begin("m", V2, "200").chunk("m", 200, V2[200:]).committed("m", V2, "m")
    s.entry("m", V2).files([blob(V2)])  # the old blob went away with the commit
    s.check(impl)


def test_begin_with_another_sha_or_size_starts_over(impl, tmp_path):
    s = Script(tmp_path / "models")
    s.begin("m", V1).chunk("m", 0, V1[:200])
    s.begin("m", V1, size=451, digest=hashlib.sha256(V1).digest())
    s.chunk("m", 0, V1[:100]).begin("m", V2).chunk("m", 0, V2)
    s.committed("m", V2, "m").entry("m", V2)
    s.check(impl)


def test_offset_mismatch_and_other_upload_state_errors(impl, tmp_path):
    s = Script(tmp_path / "models")
    s.chunk("m", 0, V1[:10], E_UPLOAD_STATE)  # no upload begun
    s.commit("m", E_UPLOAD_STATE)
    s.begin("m", V1)
    s.chunk("m", 100, V1[100:200], E_UPLOAD_STATE)  # a gap
    s.chunk("m", 0, V1[:100])
    s.chunk("m", 50, V1[50:150], E_UPLOAD_STATE)  # overlaps the held bytes and goes past them
    s.chunk("m", 400, V1[400:] + b"x", E_UPLOAD_STATE)  # past the declared size
    s.commit("m", E_UPLOAD_STATE)  # incomplete
    s.chunk("m", 100, V1[100:]).committed("m", V1, "m")
    s.check(impl)


def test_retried_chunks_are_accepted_once(impl, tmp_path):
    s = Script(tmp_path / "models").begin("m", V1).chunk("m", 0, V1[:200])
    s.chunk("m", 0, V1[:200])  # its reply was lost: the host sends it again
    s.chunk("m", 100, V1[100:200], "200")
    s.chunk("m", 200, V1[200:]).chunk("m", 200, V1[200:])
    s.committed("m", V1, "m").entry("m", V1)
    s.check(impl)


def test_activate_delete_and_shared_blobs(impl, tmp_path):
    s = Script(tmp_path / "models").upload("a", V1).upload("b", V2, active="a")
    s.upload("c", V1, active="a")  # the same bytes as "a": one blob for both
    s.names(["a", "b", "c"], "a").files([blob(V1), blob(V2)])
    s.named("activate", "b").names(["a", "b", "c"], "b")
    s.named("delete", "b").names(["a", "c"], "None").files([blob(V1)])
    s.named("delete", "a").files([blob(V1)]).entry("c", V1)
    s.named("delete", "b", E_NO_MODEL).named("activate", "b", E_NO_MODEL)
    s.add("entry %s" % hx("b"), E_NO_MODEL)
    s.open().names(["c"], "None")
    s.check(impl)


def test_commit_without_activate_leaves_no_model_active(impl, tmp_path):
    # activate false is honoured on a store with no active model too, across a restart
    s = Script(tmp_path / "models").begin("m", V1).chunk("m", 0, V1)
    s.commit("m", "%s %d None" % (sha(V1), len(V1)), activate=False).names(["m"], "None")
    s.upload("n", V2).open().names(["m", "n"], "n")
    s.check(impl)


BAD_NAMES = ["", ".hidden", "..", "a/b", "../up", "x" * 49, "caf\u00e9", "a b", "a\\b", 5]


def test_bad_names_are_refused(impl, tmp_path):
    s = Script(tmp_path / "models")
    for name in BAD_NAMES:
        if isinstance(name, str):
            s.begin(name, V1, E_BAD_REQUEST).chunk(name, 0, V1, E_BAD_REQUEST)
            s.commit(name, E_BAD_REQUEST)
        s.named("abort", name, E_BAD_REQUEST)
        # No model can have such a name, so there is none to activate or delete.
        s.named("activate", name, E_NO_MODEL).named("delete", name, E_NO_MODEL)
    s.files(index=False)
    s.upload("x" * 48, V1[:10]).upload("A-z_0.9", V1[:20]).names(["A-z_0.9", "x" * 48], "A-z_0.9")
    s.check(impl)


@pytest.mark.parametrize(
    "fmt, size, digest",
    [
        ("", 450, None),
        ("tflite", 0, None),
        ("tflite", -5, None),
        ("tflite", 450, bytes(31)),
        ("tflite", 450, bytes(33)),
    ],
    ids=["no-format", "size-0", "size-negative", "sha-31", "sha-33"],
)
def test_bad_begin_arguments(impl, tmp_path, fmt, size, digest):
    s = Script(tmp_path / "models")
    s.begin("m", V1, E_BAD_REQUEST, fmt, size, digest).files(index=False)
    s.check(impl)


def test_restart_sweeps_stray_blobs_and_a_temp_index(impl, tmp_path):
    s = Script(tmp_path / "models").upload("m", V1)
    s.add("write blobs/0123456789abcdef.bin %s" % d(V2), "ok")  # a blob no index names
    s.add("write index.json.tmp 7b2274", "ok")  # half a new index, from a crash mid-write
    s.open().files([blob(V1)]).entry("m", V1).names(["m"], "m")
    s.check(impl)


def test_restart_recovers_an_index_only_left_as_temp(impl, tmp_path):
    # On FAT, replace() removes the target before the rename: a crash there leaves only .tmp.
    Script(tmp_path / "models").upload("m", V1).check(impl)
    index = (tmp_path / "models" / "index.json").read_bytes()
    s = Script(tmp_path / "models").add("remove index.json", "ok")
    s.add("write index.json.tmp %s" % d(index), "ok")
    s.open().files([blob(V1)]).names(["m"], "m").entry("m", V1)
    s.check(impl)


def test_commit_after_a_restart_reads_the_upload_back_once(impl, tmp_path):
    # Every byte came before the restart: the sha256 the chunks grew is gone, commit hashes the
    # part file instead (and still refuses one whose bytes do not match).
    s = (
        Script(tmp_path / "models")
        .begin("m", V1)
        .chunk("m", 0, V1[:300])
        .chunk("m", 300, V1[300:])
    )
    s.open().committed("m", V1, "m").entry("m", V1)
    s.begin("n", V2, digest=hashlib.sha256(V1[:430]).digest()).chunk("n", 0, V2)
    s.open().commit("n", E_CHECKSUM).entry("m", V1)
    s.check(impl)


def test_two_uploads_taking_turns_hash_each_whole(impl, tmp_path):
    # Chunks of another upload close this one's file: its next chunk hashes what it holds again.
    s = Script(tmp_path / "models").begin("a", V1).begin("b", V2)
    s.chunk("a", 0, V1[:150]).chunk("b", 0, V2[:200]).chunk("a", 150, V1[150:300])
    s.chunk("b", 200, V2[200:]).chunk("a", 300, V1[300:])
    s.committed("b", V2, "b").committed("a", V1, "a").entry("a", V1).entry("b", V2)
    s.check(impl)


def test_restart_sweeps_a_part_without_its_descriptor(impl, tmp_path):
    # begin writes the descriptor without an fsync: a power cut may leave the part alone.
    s = Script(tmp_path / "models").upload("m", V1)
    s.add("write upload/x.part %s" % d(V2[:100]), "ok")
    s.open().files([blob(V1)]).entry("m", V1).names(["m"], "m")
    s.check(impl)


@pytest.mark.parametrize("restarted", [False, True], ids=["one-agent", "after-a-restart"])
def test_commit_syncs_the_models_bytes_before_the_index_names_them(
    tmp_path, monkeypatch, restarted
):
    # Power-cut safety, as far as a test without a power cut can see it: the order of the
    # fsyncs.  The blob's bytes must be on storage before the index that names it is saved.
    import os

    from kpdev.device.store import ModelStore

    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink("/proc/self/fd/%d" % fd)))
        real(fd)

    root = str(tmp_path / "models")
    store = ModelStore(root, 1 << 20)
    store.begin("m", "tflite", len(V1), hashlib.sha256(V1).digest())
    store.chunk("m", 0, V1[:200])
    if restarted:  # the agent restarts: the rest comes to a new one, which reads back at commit
        store.close()
        store = ModelStore(root, 1 << 20)
        store.chunk("m", 200, V1[200:])
        store.close()
        store = ModelStore(root, 1 << 20)
    else:
        store.chunk("m", 200, V1[200:])
    monkeypatch.setattr(os, "fsync", fsync)
    store.commit("m")
    assert synced == ["m.part", "index.json.tmp"]  # the part is synced before its rename
    with open(os.path.join(root, "blobs", blob(V1)), "rb") as f:
        assert f.read() == V1
