"""The Akida learner of a learning pack: Akida's own on-chip learning on the pack model whose
last layer is compiled for it (``kpdev.device.learnrun``).  Akida runs on CPython boards only,
so this code is imported by an akida learner alone and never sits in a microcontroller's heap.
"""

from kpdev.device.learnrun import _need


def _batch(vectors):
    # Stack single-sample tensors [1, ...] into one batch tensor [n, ...].
    from kpdev.protocol.tensors import Tensor

    first = vectors[0]
    shape = list(first.shape)
    shape[0] = len(vectors)
    return Tensor(first.dtype, shape, b"".join([v.data for v in vectors]))


class AkidaAdapter:
    # Akida's own learning on the pack model whose last layer is compiled for it.

    def __init__(self, agent, runner, spec):
        self.spec = spec
        self.name = runner.models[spec["model"]]["model"]
        self.loaded = None
        self.names = []

    def start(self, agent, payload, labels):
        from kpdev import accelerators

        source = agent.store.path(self.name) if payload is None else payload
        self.loaded = accelerators.get("akida").load(source, {"output": "forward"})
        learning = self.loaded.learning()
        _need(
            learning is not None,
            "pack model %r has no learning layer: build the pack with an akida learner "
            "(kpdev pack build --learner akida)" % self.spec["model"],
        )
        _need(
            learning["num_classes"] == len(labels),
            "the akida model learns %d classes, the pack names %d"
            % (learning["num_classes"], len(labels)),
        )
        self.names = list(labels)

    def vector(self, agent, x):
        return x

    def labels(self):
        return self.names

    def predict(self, vectors):
        return self.loaded.predict_classes([_batch(vectors)])

    def learn(self, vectors, ys):
        batch = [_batch(vectors)]
        before = [c for c, _ in self.loaded.predict_classes(batch)]
        self.loaded.fit(batch, ys)
        return before

    def add_classes(self, labels):
        self.loaded.add_classes(len(labels))
        self.names += labels

    def payload(self):
        return self.loaded.to_bytes()

    def info(self):
        return {"kind": "akida", "labels": self.names, "learning": self.loaded.learning()}
