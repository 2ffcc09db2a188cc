"""A feature window through the device pipeline on a 64 KB heap, as sim-mcu-64k runs its agent:
the device code from a ROMFS image (executed in place, as from a board's flash).  Prints the heap
in use before and after 20 transforms, the heap's size, then the output's shape and length
(tests/device/test_pipeline.py runs it after romfs.BOOT).
"""

import gc
import os

DIR = os.getenv("KPDEV_HEAP_DIR")  # where spec.cbor and window.bin are

# Collected after each import, as the agent's __main__ does, so the heap does not start out
# fragmented by what the imports left behind.
gc.collect()
from kpdev.device.pipeline import Pipeline  # noqa: E402

gc.collect()
from kpdev.protocol import cbor  # noqa: E402
from kpdev.protocol.tensors import Tensor  # noqa: E402

gc.collect()

with open(DIR + "/spec.cbor", "rb") as f:
    p = Pipeline(cbor.loads(f.read()))
with open(DIR + "/window.bin", "rb") as f:
    w = Tensor("float32", (100, 6), f.read())
x = p.transform(w)
before = k = 0  # the script's globals are all made before the heap is counted
gc.collect()
before = gc.mem_alloc()
for k in range(20):  # noqa: B007  (k is made before the heap is counted)
    x = p.transform(w)
gc.collect()
print("%d %d %d" % (before, gc.mem_alloc(), gc.mem_alloc() + gc.mem_free()))
print(" ".join([str(d) for d in x.shape]), len(x.data))
