"""Compile the small IREE test models in this folder: ``python tests/data/make_iree_models.py``.

Each model is MLIR text compiled by ``iree.compiler.compile_str`` (the ``iree-base-compiler``
package) for the ``llvm-cpu`` target with the generic x86-64 CPU, so the ``.vmfb`` runs on any
x86-64 Linux machine through the ``local-sync`` or ``local-task`` driver.  Weights come from a
seeded numpy RNG: the same compiler version writes the same bytes every time.

- ``mlp_f32.vmfb`` (StableHLO): float32 [1, 16] -> dense 8 + ReLU -> dense 4.
- ``int_arith.vmfb`` (linalg): int8 x [N, 8] and int32 y [N, 8] (N dynamic) ->
  int32 ``x * y + 7`` (wrapping) and int8 ``x >> 1`` (arithmetic shift); x and y with
  different N fail the call (``cf.assert``).  Two more exported functions: ``double`` maps
  int32 [4] to ``v + v``, ``scale`` takes int32 [4] v and an i32 scalar k to (v * k, k + 1).
- ``matmul_chain.vmfb`` (StableHLO): float32 [1, 256] -> M = tanh(x^T x), out = x (M M M) / 65536;
  two 256x256 by 256x256 matrix products, a few milliseconds per inference, for benchmarks.
- ``accumulator.vmfb`` (arith on tensors, an IREE ``util.global``): a stateful model,
  float32 [4] x -> ``total += x``, the running total kept in a module global between calls.
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

TARGET_FLAGS = [
    # Baseline x86-64 only: the file must run on any machine, not just the one compiling it.
    "--iree-llvmcpu-target-cpu=generic",
    "--iree-llvmcpu-debug-symbols=false",
]
MLP_SIZES = (16, 8, 4)
MATMUL_N = 256


def mlp_weights(seed=0):
    """(w1 [16, 8], b1 [8], w2 [8, 4], b2 [4]) float32 weights of ``mlp_f32.vmfb``."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = MLP_SIZES
    w1 = rng.normal(0.0, 0.5, (n_in, n_hidden)).astype(np.float32)
    b1 = rng.normal(0.0, 0.1, (n_hidden,)).astype(np.float32)
    w2 = rng.normal(0.0, 0.5, (n_hidden, n_out)).astype(np.float32)
    b2 = rng.normal(0.0, 0.1, (n_out,)).astype(np.float32)
    return w1, b1, w2, b2


def mlp_reference(x, seed=0):
    """What ``mlp_f32.vmfb`` computes, in numpy (float32, up to summation order)."""
    w1, b1, w2, b2 = mlp_weights(seed)
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def int_arith_reference(x, y):
    """What ``int_arith.vmfb``'s ``main`` computes, in numpy."""
    product = x.astype(np.int32) * y + np.int32(7)  # numpy int32 wraps as the model's i32 does
    return product, (x >> 1).astype(np.int8)


def _dense(a):
    """An MLIR dense elements literal of a float32 array; repr of the double is exact for f32."""
    if a.ndim == 1:
        return "[" + ", ".join(repr(float(v)) for v in a) + "]"
    return "[" + ", ".join(_dense(row) for row in a) + "]"


def _type(shape, elem="f32"):
    return "tensor<" + "".join("%dx" % d for d in shape) + elem + ">"


def mlp_mlir(seed=0):
    """StableHLO of the float32 MLP with the seeded weights baked in as constants."""
    w1, b1, w2, b2 = mlp_weights(seed)
    n_in, n_hidden, n_out = MLP_SIZES
    x_t, h_t, o_t = _type([1, n_in]), _type([1, n_hidden]), _type([1, n_out])
    w1_t, w2_t = _type([n_in, n_hidden]), _type([n_hidden, n_out])
    b1_t, b2_t = _type([n_hidden]), _type([n_out])
    return f"""
func.func @main(%x: {x_t} {{iree.abi.name = "input"}}) -> ({o_t} {{iree.abi.name = "logits"}}) {{
  %w1 = stablehlo.constant dense<{_dense(w1)}> : {w1_t}
  %b1 = stablehlo.constant dense<{_dense(b1)}> : {b1_t}
  %w2 = stablehlo.constant dense<{_dense(w2)}> : {w2_t}
  %b2 = stablehlo.constant dense<{_dense(b2)}> : {b2_t}
  %zero = stablehlo.constant dense<0.0> : {h_t}
  %xw = stablehlo.dot_general %x, %w1, contracting_dims = [1] x [0]
      : ({x_t}, {w1_t}) -> {h_t}
  %b1b = stablehlo.broadcast_in_dim %b1, dims = [1] : ({b1_t}) -> {h_t}
  %pre = stablehlo.add %xw, %b1b : {h_t}
  %h = stablehlo.maximum %pre, %zero : {h_t}
  %hw = stablehlo.dot_general %h, %w2, contracting_dims = [1] x [0]
      : ({h_t}, {w2_t}) -> {o_t}
  %b2b = stablehlo.broadcast_in_dim %b2, dims = [1] : ({b2_t}) -> {o_t}
  %out = stablehlo.add %hw, %b2b : {o_t}
  return %out : {o_t}
}}
"""


INT_ARITH_MLIR = """
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @main(%x: tensor<?x8xi8> {iree.abi.name = "x"},
                %y: tensor<?x8xi32> {iree.abi.name = "y"})
    -> (tensor<?x8xi32> {iree.abi.name = "sum"}, tensor<?x8xi8> {iree.abi.name = "halved"}) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x8xi8>
  %m = tensor.dim %y, %c0 : tensor<?x8xi32>
  %same = arith.cmpi eq, %n, %m : index
  cf.assert %same, "x and y must have the same number of rows"
  %e32 = tensor.empty(%n) : tensor<?x8xi32>
  %e8 = tensor.empty(%n) : tensor<?x8xi8>
  %r:2 = linalg.generic
      {indexing_maps = [#map, #map, #map, #map], iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<?x8xi8>, tensor<?x8xi32>)
      outs(%e32, %e8 : tensor<?x8xi32>, tensor<?x8xi8>) {
  ^bb0(%a: i8, %b: i32, %o1: i32, %o2: i8):
    %wide = arith.extsi %a : i8 to i32
    %prod = arith.muli %wide, %b : i32
    %seven = arith.constant 7 : i32
    %sum = arith.addi %prod, %seven : i32
    %one = arith.constant 1 : i8
    %half = arith.shrsi %a, %one : i8
    linalg.yield %sum, %half : i32, i8
  } -> (tensor<?x8xi32>, tensor<?x8xi8>)
  return %r#0, %r#1 : tensor<?x8xi32>, tensor<?x8xi8>
}

func.func @double(%v: tensor<4xi32>) -> tensor<4xi32> {
  %r = arith.addi %v, %v : tensor<4xi32>
  return %r : tensor<4xi32>
}

func.func @scale(%v: tensor<4xi32>, %k: i32) -> (tensor<4xi32>, i32) {
  %e = tensor.empty() : tensor<4xi32>
  %ks = linalg.fill ins(%k : i32) outs(%e : tensor<4xi32>) -> tensor<4xi32>
  %r = arith.muli %v, %ks : tensor<4xi32>
  %one = arith.constant 1 : i32
  %next = arith.addi %k, %one : i32
  return %r, %next : tensor<4xi32>, i32
}
"""


ACCUMULATOR_MLIR = """
util.global private mutable @total = dense<0.0> : tensor<4xf32>
func.func @main(%x: tensor<4xf32> {iree.abi.name = "x"})
    -> (tensor<4xf32> {iree.abi.name = "total"}) {
  %t = util.global.load @total : tensor<4xf32>
  %s = arith.addf %t, %x : tensor<4xf32>
  util.global.store %s, @total : tensor<4xf32>
  return %s : tensor<4xf32>
}
"""


def matmul_chain_mlir(n=MATMUL_N):
    """StableHLO of x (M M M) with M = tanh(x^T x): 2 n^3 multiply-adds from n input floats."""
    x_t, m_t = _type([1, n]), _type([n, n])
    return f"""
func.func @main(%x: {x_t} {{iree.abi.name = "input"}}) -> ({x_t} {{iree.abi.name = "output"}}) {{
  %outer = stablehlo.dot_general %x, %x, contracting_dims = [0] x [0] : ({x_t}, {x_t}) -> {m_t}
  %m = stablehlo.tanh %outer : {m_t}
  %p = stablehlo.dot_general %m, %m, contracting_dims = [1] x [0] : ({m_t}, {m_t}) -> {m_t}
  %q = stablehlo.dot_general %p, %m, contracting_dims = [1] x [0] : ({m_t}, {m_t}) -> {m_t}
  %y = stablehlo.dot_general %x, %q, contracting_dims = [1] x [0] : ({x_t}, {m_t}) -> {x_t}
  %scale = stablehlo.constant dense<{1.0 / (n * n)!r}> : {x_t}
  %out = stablehlo.multiply %y, %scale : {x_t}
  return %out : {x_t}
}}
"""


def matmul_chain_reference(x, n=MATMUL_N):
    """What ``matmul_chain.vmfb`` computes, in numpy (float32, up to summation order)."""
    m = np.tanh(x.T @ x)
    return (x @ (m @ m @ m)) / np.float32(n * n)


def compile_mlir(text):
    """The ``.vmfb`` bytes of MLIR ``text`` for llvm-cpu on a generic x86-64 CPU."""
    from iree.compiler import compile_str

    return compile_str(
        text,
        target_backends=["llvm-cpu"],
        extra_args=TARGET_FLAGS,
        # No locations or debug ops: smaller files, and nothing of this machine's paths in them.
        output_mlir_debuginfo=False,
        strip_source_map=True,
        strip_debug_ops=True,
    )


# File name -> MLIR source builder.
MODELS = {
    "mlp_f32.vmfb": mlp_mlir,
    "int_arith.vmfb": lambda: INT_ARITH_MLIR,
    "matmul_chain.vmfb": matmul_chain_mlir,
    "accumulator.vmfb": lambda: ACCUMULATOR_MLIR,
}


def main():
    for name, source in MODELS.items():
        data = compile_mlir(source())
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print("%-20s %7d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
