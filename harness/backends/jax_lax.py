"""Backend ``jax.lax``: ``conv_transpose``, ``conv_general_dilated`` and ``reduce_window``, eager, on CPU.

The lax functions are called directly (no ``jax.jit`` around them): each
eager call is traced and compiled by XLA on first use of its shapes, so
``duration_ms`` of a case includes that compilation — unless an earlier run
compiled the same program: XLA's executables are kept in JAX's persistent
compilation cache under ``.conform/cache/jax/<host>`` (``envs.compile_cache``:
a folder per kind of processor; JAX keys an entry by the program, the
jax/jaxlib versions and the compile options, so a cached executable is the one
the compiler would produce here; a ``JAX_COMPILATION_CACHE_DIR`` of the user's
own wins; the folder's own path is kept out of the key, see ``setup``), kept
within ``envs.COMPILE_CACHE_MAX_BYTES`` by ``envs.prune_cache`` at each worker start.
Compiling was ~90 % of this worker's CPU time on the default suite; a warm
cache is what a nightly run sees. ``jax_enable_x64`` is
on, so float64 cases run in float64; float16 and bfloat16 are JAX's own.
The times end in ``jax.block_until_ready`` (dispatch is asynchronous).

``conv2d``: ``conv_general_dilated`` with ``window_strides``, ``padding``
(``'SAME'``/``'VALID'`` are the canonical rule: ``lax.padtype_to_pads`` pads
``(ceil(H/s) − 1)·s + K − H`` with the odd row at the end, ``K`` dilated;
explicit as ``(lo, hi)`` pairs), ``rhs_dilation``, ``feature_group_count``
and ``dimension_numbers`` (``NCHW``/``NHWC`` natively, kernel ``OIHW``:
the canonical layout).

``conv2d_transpose``: ``conv_transpose(..., transpose_kernel=True)`` with the
canonical weight as the forward conv's ``OIHW`` kernel (JAX flips it and swaps
O/I, the gradient-of-conv convention), ``strides``, ``rhs_dilation`` and
``dimension_numbers``. Its padding pairs are the zero padding of the
stride-dilated input (``jax/_src/lax/convolution.py``, ``conv_transpose``
with ``use_consistent_padding=False``): crops ``(pt, pb)`` and
``output_padding`` are ``(K−1−pt, K−1−pb+op)``, negative where a crop exceeds
``K−1``. JAX's strings (``_conv_transpose_padding``) are passed only where
they mean the canonical form: ``'SAME'`` gives ``H·s`` rows cropped
``(K−s)//2`` on top, the canonical ``same``; ``'VALID'`` gives
``H·s + max(K−s, 0)`` rows, the canonical ``valid`` only when ``K ≥ s``
(for ``K < s`` it is ``s − K`` zero rows longer: explicit pairs are passed).
``output_shape`` and ``output_padding`` have no parameter: the pairs carry
them (JAX's way, not emulation). Groups: ``conv_transpose`` has none, so a
grouped call is ``conv_general_dilated`` with ``lhs_dilation=strides``, the
same pairs and ``feature_group_count``, the kernel flipped and regrouped to
``(C_out, C_in/groups, kh, kw)`` beforehand.

Bias: lax convolutions have none; added with ``jax.numpy.add`` (emulated).

Pooling: JAX has no pooling primitive (``flax.linen.max_pool``/``avg_pool``
are these same compositions). ``max_pool2d`` is ``reduce_window`` with
``lax.max`` and a ``−inf`` init (the padding value), native window,
strides, padding (strings as for ``conv2d``) and ``window_dilation``.
``avg_pool2d`` is emulated: a ``reduce_window`` sum divided by a
``reduce_window`` count of ones (over the input, or over input and padding
with ``count_include_pad``). The count is summed in float32 (exact; flax's
``jnp.ones`` has the default dtype too) and rounded once to the case dtype
for the division: a bfloat16 count stops at 256 (256 + 1 rounds back), so a
17×17 window would divide by 256, not 289 (measured; the gradient
``dy / count`` shows it at once). ``ceil_mode`` has no parameter: the window it
adds is posed by extending the bottom/right padding over its overhang
(emulated; the overhang is never counted).

Accumulation (Note [Tolerance model], measured on jaxlib 0.10.2, CPU): XLA
runs float16/bfloat16 convolutions in float32 (the optimized HLO converts
the operands to f32, convolves, converts back; ``CpuFloatSupport`` does not
list ``kConvolution``), and the results equal the once-rounded exact sum for
K = 4608. ``reduce_window`` sums stay in the case dtype (float16 natively;
bfloat16 normalized to f32 with a bf16 rounding after every addition), up to
29 ulp for 256 terms: the conservative default applies to pooling.
"""

from __future__ import annotations

import os
from typing import Optional

from harness.backends.base import Backend, Call, Unsupported
from harness.backends.program import Attr, Import, Index, Leaf, Method, Program, Ref, Step
from harness.backends.program import Call as Expr
from harness.backends import jax_lax_native, jax_lax_params
from harness.envs import compile_cache, prune_cache
from harness.ops.conv2d_transpose.semantics import axis_sizes as transpose_axis
from harness.ops.pooling import axis_out, axis_pads

ENVIRONMENT = (("JAX_PLATFORMS", "cpu"),)
SETUP = ('jax.config.update("jax_enable_x64", True)',)
IMPORTS = (Import("jax"), Import("jax.numpy"), Import("numpy"))


def jax_transpose_string_pads(k_eff: int, s: int, mode: str) -> tuple[int, int]:
    """What ``conv_transpose`` pads the stride-dilated input by for ``'SAME'``/``'VALID'`` on one axis
    (``_conv_transpose_padding`` in jax/_src/lax/convolution.py, restated)."""
    if mode == "SAME":
        before = k_eff - 1 if s > k_eff - 1 else -(-(k_eff + s - 2) // 2)
        return before, k_eff + s - 2 - before
    return k_eff - 1, s - 1 + max(k_eff - s, 0)


def transpose_pairs(params: dict, x_shape) -> list[tuple[int, int]]:
    """Per spatial axis, the ``(before, after)`` padding of the stride-dilated input that gives the canonical
    crops and output size (for a call the semantics rejects: what its parameters literally ask)."""
    padding, out_shape = params["padding"], params["output_shape"] or (None, None)
    pairs = []
    for axis, size in enumerate(x_shape[2:]):
        k, s, d = params["kernel_size"][axis], params["stride"][axis], params["dilation"][axis]
        form = padding if isinstance(padding, str) else "explicit"
        pads = (0, 0) if isinstance(padding, str) else tuple(padding[2 * axis: 2 * axis + 2])
        top, _, _, out = transpose_axis(size, k, s, d, form, pads, params["output_padding"][axis], out_shape[axis],
                                        params.get("size_rule", "tensorflow"))
        k_eff = d * (k - 1) + 1
        before = k_eff - 1 - top
        pairs.append((before, out - ((size - 1) * s + 1) + k_eff - 1 - before))
    return pairs


def _tensor(value, dtype: str):
    return Expr("jax.numpy.asarray", (value,), {"dtype": Attr(f"jax.numpy.{dtype}")})


def _input(layout: str):
    """The canonical NCHW ``x`` in the case's layout (JAX takes either through dimension_numbers)."""
    return Expr(Method(Ref("x"), "transpose"), (0, 2, 3, 1)) if layout == "NHWC" else Ref("x")


def _leaves(call: Call, weight: str = "rhs") -> tuple[Leaf, ...]:
    """The differentiable operands (Note [Gradients] in ``autodiff.py``): ``x`` (NHWC: the canonical input
    transposed), the kernel as converted (``weight``: before any regrouping) and the bias vector."""
    named = {"x": Leaf("x", Ref("x"), (0, 2, 3, 1) if call.layout == "NHWC" else None),
             "w": Leaf("w", Ref(weight)), "b": Leaf("b", Ref("bias"))}
    return tuple(leaf for name, leaf in named.items() if name in call.arrays)


#: The output ``y``: JAX computes in the case layout.
RESULT = Leaf("output", Ref("y"))


def _finish(steps: list, dtype: str) -> None:
    steps.append(Step("y", Expr("jax.block_until_ready", (Ref("y"),)), timed=True,
                      comment="eager dispatch is asynchronous"))
    out = "float64" if dtype == "float64" else "float32"
    steps.append(Step("out", Expr("numpy.asarray", (Ref("y"),), {"dtype": Attr(f"numpy.{out}")}), "finish"))


class JaxLaxBackend(Backend):
    id = "jax.lax"
    framework = "jax"
    distribution = "jax"
    environment = "jax"
    import_name = "jax"
    resident_bytes = 384 << 20
    plans_calls = True
    #: XLA's CPU reduce_sum of a float16/bfloat16 cotangent (the bias gradient) stays in the case dtype:
    #: measured 2.6–5× the float32-accumulation bound on the default suite, within the float16 one.
    gradient_in_case_dtype = frozenset({"b"})
    PARAMETERS = jax_lax_params.PARAMETERS
    NATIVE = jax_lax_native.NATIVE
    # No class-level `accumulation`: convolution programs say float32 for half types (module docstring);
    # pooling sums accumulate in the case dtype, the conservative default.

    def setup(self) -> None:
        for name, value in ENVIRONMENT:
            os.environ.setdefault(name, value)
        import jax
        import jax.numpy  # noqa: F401 - imported once per worker; programs use it
        jax.config.update("jax_enable_x64", True)
        if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            prune_cache(compile_cache("jax"))     # ours, bounded; a user's own cache is theirs to bound
            jax.config.update("jax_compilation_cache_dir", str(compile_cache("jax")))
        # Every program: the eager calls compile in milliseconds each, under the defaults' thresholds.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        # JAX's default also turns on XLA's GPU autotuning cache in a subfolder of the cache, which puts the
        # folder's absolute path into the compile options, so into every entry's key: a cache moved, restored
        # at another path or renamed was never hit again. Measured: the default suite after the cache moved
        # into its <host> folder recompiled all ~5,100 programs, the jax.lax worker 606 s of CPU against
        # 120 s warm; cases/avg_pool2d (--mode both) from a copied cache 47 s, with this 11.6 s (0 misses).
        # The CPU compiler has no autotuning to cache.
        jax.config.update("jax_persistent_cache_enable_xla_caches", "none")

    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        """JAX has no VJP of a dilated max ``reduce_window`` (``_select_and_gather_add_transpose`` raises
        NotImplementedError): a capability gap of the gradient, not an answer about the call."""
        if isinstance(exc, NotImplementedError) and "VJP not implemented" in str(exc):
            return f"jax.vjp: {str(exc).splitlines()[0]}"
        return None

    # ------------------------------------------------------------------ convolutions

    def _conv_program(self, call: Call, steps: list, notes: list, emulated: bool, weight: str = "rhs") -> Program:
        """``steps``: ``x`` first, the kernel conversion, the convolution. The bias vector is converted right
        after ``x`` and reshaped by JAX in the addition, so its gradient is the vector's."""
        layout, operands = call.layout, ("x", "w")
        if "b" in call.arrays:
            operands += ("b",)
            emulated = True
            notes.append("bias added with jax.numpy.add (lax convolutions have no bias)")
            shape = (1, 1, 1, -1) if layout == "NHWC" else (1, -1, 1, 1)
            steps.insert(1, Step("bias", _tensor(Ref("b"), call.dtype), "prepare"))
            steps.append(Step("y", Expr("jax.numpy.add", (Ref("y"), Expr("jax.numpy.reshape", (Ref("bias"), shape)))),
                              timed=True))
        _finish(steps, call.dtype)
        accumulation = "float32" if call.dtype in ("float16", "bfloat16") else None
        return Program("jax", IMPORTS, operands, tuple(steps), "out", emulated, tuple(notes), accumulation,
                       environment=ENVIRONMENT, setup=SETUP, leaves=_leaves(call, weight), result=RESULT)

    def conv2d(self, call: Call) -> Program:
        p, layout = call.params, call.layout
        padding = p["padding"].upper() if isinstance(p["padding"], str) else [tuple(p["padding"][0:2]),
                                                                               tuple(p["padding"][2:4])]
        kw = dict(window_strides=tuple(p["stride"]), padding=padding, rhs_dilation=tuple(p["dilation"]),
                  dimension_numbers=(layout, "OIHW", layout), feature_group_count=p["groups"])
        steps = [Step("x", _tensor(_input(layout), call.dtype), "prepare"),
                 Step("rhs", _tensor(Ref("w"), call.dtype), "prepare", comment="(C_out, C_in/groups, kh, kw): OIHW"),
                 Step("y", Expr("jax.lax.conv_general_dilated", (Ref("x"), Ref("rhs")), kw), timed=True)]
        return self._conv_program(call, steps, [], False)

    def conv2d_transpose(self, call: Call) -> Program:
        p, r, layout = call.params, call.resolved, call.layout
        x_shape, g = call.arrays["x"].shape, p["groups"]
        if p["out_channels"] % g and not x_shape[1] % g:
            raise Unsupported("jax.lax has no out_channels: it is the kernel's output features (C_out/groups · "
                              "groups), so out_channels not divisible by groups cannot be posed")
        if r is None and p["output_shape"] is not None:
            raise Unsupported("jax.lax.conv_transpose has no output_shape (the padding pairs carry the size): "
                              "an unreachable output_shape cannot be posed")
        if r is None and p.get("size_rule") == "keras":
            raise Unsupported("jax.lax.conv_transpose has no output_padding (the padding pairs carry the size, "
                              "unchecked): an invalid size_rule 'keras' call cannot be posed")
        if r is None and any(p["output_padding"]):
            raise Unsupported("jax.lax.conv_transpose has no output_padding (the padding pairs carry the size, "
                              "unchecked): an invalid output_padding cannot be posed")
        pairs = transpose_pairs(p, x_shape)
        notes = []
        padding = pairs
        # conv_transpose's strings are 'SAME' and 'VALID' only (_conv_transpose_padding); 'same_lower' is pairs
        if g == 1 and p["padding"] in ("same", "valid"):
            mode = p["padding"].upper()
            k_eff = [d * (k - 1) + 1 for k, d in zip(p["kernel_size"], p["dilation"])]
            native = [jax_transpose_string_pads(k, s, mode) for k, s in zip(k_eff, p["stride"])]
            if native == pairs:
                padding = mode
            else:
                notes.append(f"padding {p['padding']!r} passed as the pairs {pairs}: JAX's {mode!r} pads "
                             f"{native} here (H·s + max(K − s, 0) rows for 'VALID'), another output")
        dn = (layout, "OIHW", layout)
        steps = [Step("x", _tensor(_input(layout), call.dtype), "prepare")]
        if g == 1:
            steps.append(Step("rhs", _tensor(Ref("w"), call.dtype), "prepare",
                              comment="(C_in, C_out, kh, kw): the forward conv's OIHW kernel"))
            kw = dict(strides=tuple(p["stride"]), padding=padding, rhs_dilation=tuple(p["dilation"]),
                      dimension_numbers=dn, transpose_kernel=True)
            steps.append(Step("y", Expr("jax.lax.conv_transpose", (Ref("x"), Ref("rhs")), kw), timed=True))
        else:
            cig, cog = x_shape[1] // g, p["out_channels"] // g
            kh, kw_ = p["kernel_size"]
            steps.append(Step("kernel", _tensor(Ref("w"), call.dtype), "prepare", comment="(C_in, C_out/g, kh, kw)"))
            regrouped = Expr(Method(Expr(Method(Expr(Method(Index(Ref("kernel"), (slice(None, g * cig),)), "reshape"),
                                                     (g, cig, cog, kh, kw_)), "transpose"), (0, 2, 1, 3, 4)),
                                    "reshape"), (g * cog, cig, kh, kw_))
            flipped = Index(regrouped, (slice(None), slice(None), slice(None, None, -1), slice(None, None, -1)))
            steps.append(Step("rhs", flipped, "prepare",
                              comment="-> (C_out, C_in/g, kh, kw), spatially flipped (in JAX: differentiated)"))
            notes.append(f"groups={g}: conv_transpose has no groups; conv_general_dilated with lhs_dilation=strides "
                         "and feature_group_count")
            kw = dict(window_strides=(1, 1), padding=pairs, lhs_dilation=tuple(p["stride"]),
                      rhs_dilation=tuple(p["dilation"]), dimension_numbers=dn, feature_group_count=g)
            steps.append(Step("y", Expr("jax.lax.conv_general_dilated", (Ref("x"), Ref("rhs")), kw), timed=True))
        return self._conv_program(call, steps, notes, False, "rhs" if g == 1 else "kernel")

    # ------------------------------------------------------------------ pooling

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call)

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call)

    def _pool(self, call: Call) -> Program:
        p, r, layout, dtype = call.params, call.resolved, call.layout, call.dtype
        average = call.op == "avg_pool2d"
        dilation = tuple(p.get("dilation", (1, 1)))
        if r is None and p["ceil_mode"]:
            raise Unsupported("jax.lax.reduce_window has no ceil_mode: an invalid ceil_mode call cannot be posed")
        if r is None and average and _windows_fit(p, call.arrays["x"].shape, dilation):
            raise Unsupported("avg_pool2d is emulated (JAX has no pooling primitive): a window holding only "
                              "padding divides 0 by 0, and nothing in JAX rejects it")

        def spatial(h, w):   # a per-dimension tuple in the layout's order (N and C untouched)
            return (1, h, w, 1) if layout == "NHWC" else (1, 1, h, w)

        notes = ["JAX has no pooling primitive: " + ("a reduce_window sum divided by a reduce_window count of ones "
                                                     "(flax.linen.avg_pool's form)" if average else
                                                     "reduce_window with lax.max and a -inf init "
                                                     "(flax.linen.max_pool's form)")]
        emulated = average
        pads, overhang = _pool_pads(p, r)
        if any(overhang):
            emulated = True
            notes.append(f"ceil_mode: no such parameter; the added window's overhang {list(overhang)} posed as "
                         "extra bottom/right padding (never counted)")
        if isinstance(p["padding"], str) and not any(overhang):
            padding = p["padding"].upper()
        else:
            (t, b), (le, ri) = pads
            extended = ((t, b + overhang[0]), (le, ri + overhang[1]))
            padding = ((0, 0), *extended, (0, 0)) if layout == "NHWC" else ((0, 0), (0, 0), *extended)
        window = dict(window_dimensions=spatial(*p["kernel_size"]), window_strides=spatial(*p["stride"]),
                      padding=padding)
        steps = [Step("x", _tensor(_input(layout), dtype), "prepare")]
        if not average:
            steps.append(Step("y", Expr("jax.lax.reduce_window", (Ref("x"),), dict(
                init_value=_tensor(float("-inf"), dtype), computation=Attr("jax.lax.max"), **window,
                window_dilation=spatial(*dilation))), timed=True))
        else:
            steps += self._average_steps(call, pads, overhang, window, spatial)
        _finish(steps, dtype)
        return Program("jax", IMPORTS, ("x",), tuple(steps), "out", emulated, tuple(notes),
                       environment=ENVIRONMENT, setup=SETUP, leaves=_leaves(call), result=RESULT)

    def _average_steps(self, call: Call, pads, overhang, window: dict, spatial) -> list:
        p, dtype = call.params, call.dtype
        _, _, h, w = call.arrays["x"].shape
        zero = _tensor(0.0, dtype)
        if p["count_include_pad"]:
            (t, b), (le, ri) = pads
            extent, count_pads = (h + t + b, w + le + ri), ((0, overhang[0]), (0, overhang[1]))
            counted = dict(window, padding=((0, 0), *count_pads, (0, 0)) if call.layout == "NHWC"
                           else ((0, 0), (0, 0), *count_pads))
        else:
            extent, counted = (h, w), window
        shape = spatial(*extent)
        return [Step("ones", Expr("jax.numpy.ones", (shape,), {"dtype": Attr("jax.numpy.float32")}), "prepare",
                     comment="what the count counts: " + ("input and padding" if p["count_include_pad"]
                                                          else "the input")),
                Step("total", Expr("jax.lax.reduce_window", (Ref("x"),), dict(
                    init_value=zero, computation=Attr("jax.lax.add"), **window)), timed=True),
                Step("count", Expr("jax.lax.reduce_window", (Ref("ones"),), dict(
                    init_value=_tensor(0.0, "float32"), computation=Attr("jax.lax.add"), **counted)), timed=True,
                     comment="exact in float32 (a bfloat16 count stops at 256)"),
                Step("y", Expr("jax.numpy.divide", (Ref("total"), Expr(Method(Ref("count"), "astype"),
                                                                        (Attr(f"jax.numpy.{dtype}"),)))),
                     timed=True)]


def _pool_pads(params: dict, resolved: Optional[dict]) -> tuple:
    """((top, bottom), (left, right)) and the ceil_mode overhang per axis (0 where it adds no window)."""
    if resolved is not None:
        t, b, le, ri = resolved["pads"]
        overhang = []
        for size, k, s, d, lo, hi, out in zip(resolved["in_hw"], resolved["kernel"], resolved["stride"],
                                              resolved["dilation"], (t, le), (b, ri), resolved["out_hw"]):
            overhang.append(max(0, (out - 1) * s + d * (k - 1) + 1 - (size + lo + hi)))
        return ((t, b), (le, ri)), tuple(overhang)
    padding = params["padding"]
    if isinstance(padding, str):   # posed as the string; pads only for the record
        return ((0, 0), (0, 0)), (0, 0)
    return ((padding[0], padding[1]), (padding[2], padding[3])), (0, 0)


def _windows_fit(params: dict, x_shape, dilation) -> bool:
    """Whether a (rejected) pooling call has ≥ 1 window per axis in floor mode: then its defect is a window
    of padding only, not the window count."""
    padding = params["padding"]
    for axis, size in enumerate(x_shape[2:]):
        k, s, d = params["kernel_size"][axis], params["stride"][axis], dilation[axis]
        eff = d * (k - 1) + 1
        form = padding if isinstance(padding, str) else "explicit"
        explicit = (0, 0) if isinstance(padding, str) else tuple(padding[2 * axis: 2 * axis + 2])
        lo, hi = axis_pads(size, eff, s, form, explicit)
        if axis_out(size, eff, s, lo, hi, False) < 1:
            return False
    return True
