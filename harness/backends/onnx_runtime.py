"""Backend ``onnxruntime``: one-node ONNX models built with ``onnx.helper``, run in an ``InferenceSession``.

Each call builds a model of one node (``ConvTranspose``, ``Conv``,
``AveragePool`` or ``MaxPool``) at opset ``OPSET`` (26: the newest that ONNX
1.23 defines and ONNX Runtime 1.31.1 loads; 1.32 loads up to 28; the four
operators resolve to their version 22 there), runs it on the
``CPUExecutionProvider`` and returns its one output. The node's attributes
are the canonical parameters in ONNX's own spelling:

* ``kernel_shape``, ``strides``, ``dilations``, ``group``, ``ceil_mode``,
  ``count_include_pad``, ``output_padding`` and ``output_shape`` natively; the
  bias is the optional third input ``B``; weights are already in ONNX's layouts
  (``ConvTranspose``: ``(C_in, C_out/group, kh, kw)``, ``Conv``:
  ``(C_out, C_in/group, kh, kw)``).
* explicit padding is ``pads = [top, left, bottom, right]`` (begins, then ends);
  ``same`` is ``auto_pad='SAME_UPPER'`` and ``same_lower`` is
  ``auto_pad='SAME_LOWER'`` (ONNX's odd pad at the end / beginning, Note
  [Padding forms] and the operators' Notes), ``valid`` is ``auto_pad='VALID'``.
* emulated and marked: NHWC (ONNX is NCHW only: the canonical NCHW operands go
  in, the output is transposed back; a converter would add Transpose nodes),
  and explicit transposed padding with ``output_shape`` (ONNX ignores ``pads``
  when ``output_shape`` is given: posed as the ``output_padding`` it implies).

Capability gaps are what the CPU provider says when the session is created:
``NOT_IMPLEMENTED: Could not find an implementation for Conv(22)`` for float64
(``Conv``, ``ConvTranspose``, ``AveragePool``) and bfloat16 (all four) in 1.31
and 1.32 (measured); ``unsupported_reason`` turns it into ``unsupported``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from harness.backends import onnx_runtime_native
from harness.backends.base import Backend, Call, NativeParam, Outcome, Unsupported
from harness.backends.program import Attr, Fallback, Import, Method, Program, Ref, Step
from harness.backends.program import Call as Expr
from harness.ops.conv2d_transpose.semantics import implied_output_padding, one_size_request
from harness.ops.pooling import frameworks as pooling_gaps

#: The opset of every model: ONNX 1.23 defines up to 28, ONNX Runtime 1.31.1 loads up to 26 (measured).
OPSET = 26
#: The IR version opset 26 needs (``onnx.helper.find_min_ir_version_for``); ONNX Runtime 1.31/1.32 load it.
IR_VERSION = 13
#: ONNX Runtime's Conv kernel (conv_attributes.h) on a dilated call with auto_pad SAME_UPPER/SAME_LOWER.
SAME_DILATION_GAP = "Dilation not supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER"
AUTO_PAD = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}
ELEMENT = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT", "float64": "DOUBLE"}
NUMPY = {"float16": "numpy.float16", "bfloat16": "ml_dtypes.bfloat16", "float32": "numpy.float32",
         "float64": "numpy.float64"}


def _pads(t: int, b: int, l: int, r: int) -> list[int]:
    """ONNX's pads: every axis's begin, then every axis's end."""
    return [t, l, b, r]


def _window(p: dict) -> dict:
    """The attributes both pooling nodes share: kernel, strides, padding, ceil_mode."""
    attrs = dict(kernel_shape=list(p["kernel_size"]), strides=list(p["stride"]))
    attrs.update(_padding(p["padding"]))
    attrs["ceil_mode"] = int(p["ceil_mode"])
    return attrs


def _padding(padding) -> dict:
    if isinstance(padding, str):
        return {"auto_pad": AUTO_PAD[padding]}
    return {"auto_pad": "NOTSET", "pads": _pads(*padding)}


PADDING_MODE = NativeParam("auto_pad", "'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID'",
                           "same = SAME_UPPER (odd pad at the end), same_lower = SAME_LOWER (at the beginning)")
PADS = NativeParam("pads", "[x1_begin, x2_begin, x1_end, x2_end]", "[top, left, bottom, right]; with auto_pad "
                   "NOTSET")
LAYOUT = NativeParam(None, "", "ONNX is NCHW only: NHWC emulated by transposing the output", emulated=True)
DTYPE = NativeParam(None, "", "the inputs' element type; CPU kernels: see unsupported", via="inputs")
KERNEL = NativeParam("kernel_shape", "list of 2 ints", "optional for Conv/ConvTranspose (W.shape[2:])")
STRIDE = NativeParam("strides", "list of 2 ints", "default 1")
INPUTS = NativeParam("inputs", "input names ['X', 'W', 'B']", "NCHW", position=1)


class OnnxRuntimeBackend(Backend):
    id = "onnxruntime"
    framework = "onnxruntime"
    distribution = "onnxruntime"
    environment = "onnxruntime"
    import_name = "onnxruntime"
    resident_bytes = 192 << 20
    plans_calls = True
    gradient_gap = ("no gradient: an ONNX Runtime InferenceSession has no autodiff (the training build's "
                    "gradient graph builder, onnxruntime-training, is not installed)")
    NATIVE = onnx_runtime_native.NATIVE
    PARAMETERS = {"conv2d_transpose": {
        "x": INPUTS, "w": NativeParam("inputs", "W (C_in, C_out/group, kh, kw)", "the canonical layout", position=1),
        "kernel_size": KERNEL,
        "in_channels": NativeParam(None, "", "no attribute: W.shape[0], must equal X's channels", via="inputs"),
        "out_channels": NativeParam(None, "", "no attribute: W.shape[1]·group", via="inputs"),
        "output_shape": NativeParam("output_shape", "list of 2 ints", "pads are ignored with it (explicit padding: "
                                    "posed as output_padding instead)"),
        "stride": STRIDE, "padding": PADS, "padding_mode": PADDING_MODE,
        "output_padding": NativeParam("output_padding", "list of 2 ints", "< stride or dilation; added at the end"),
        "dilation": NativeParam("dilations", "list of 2 ints", "default 1"),
        "groups": NativeParam("group", "int", "default 1"),
        "bias": NativeParam("inputs", "optional third input B", "absent: no bias", position=1),
        "b": NativeParam("inputs", "B (C_out,)", "the third input", position=1),
        "layout": LAYOUT, "dtype": DTYPE,
    }}
    PARAMETERS["conv2d"] = {
        **PARAMETERS["conv2d_transpose"],
        "w": NativeParam("inputs", "W (C_out, C_in/group, kh, kw)", "the canonical layout", position=1),
        "in_channels": NativeParam(None, "", "no attribute: X's channels = W.shape[1]·group", via="inputs"),
        "out_channels": NativeParam(None, "", "no attribute: W.shape[0]", via="inputs"),
    }
    for _key in ("output_shape", "output_padding"):
        del PARAMETERS["conv2d"][_key]
    PARAMETERS["avg_pool2d"] = {
        "x": NativeParam("inputs", "input names ['X']", "NCHW", position=1), "kernel_size": NativeParam("kernel_shape", "list of 2 ints", "required"), "stride": STRIDE,
        "padding": PADS, "padding_mode": PADDING_MODE,
        "ceil_mode": NativeParam("ceil_mode", "int 0 | 1", "default 0"),
        "count_include_pad": NativeParam("count_include_pad", "int 0 | 1", "default 0 (the canonical default)"),
        "layout": LAYOUT, "dtype": DTYPE,
    }
    PARAMETERS["max_pool2d"] = {
        **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k != "count_include_pad"},
        "dilation": NativeParam("dilations", "list of 2 ints", "default 1"),
    }

    def setup(self) -> None:
        import onnx  # noqa: F401 - imported once per worker; programs use both
        import onnxruntime  # noqa: F401

    def run(self, call: Call) -> Outcome:
        self._dtype = call.dtype      # unsupported_reason names it
        return super().run(call)

    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        text = str(exc)
        if "NOT_IMPLEMENTED" in text and "Could not find an implementation" in text:
            op = text.split("implementation for ", 1)[1].split(" ", 1)[0]
            return f"ONNX Runtime's CPU provider has no {getattr(self, '_dtype', '')} kernel for {op}"
        return None

    # ---------------------------------------------------------------- operators

    def conv2d_transpose(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        if p["out_channels"] % p["groups"] and not call.arrays["x"].shape[1] % p["groups"]:
            raise Unsupported("ConvTranspose has no out_channels: it is W.shape[1]·group, so out_channels not "
                              "divisible by group cannot be posed")
        one_size_request(call, "ConvTranspose as conform poses it (output_shape becomes pads and output_padding)")
        attrs = dict(kernel_shape=list(p["kernel_size"]), strides=list(p["stride"]),
                     dilations=list(p["dilation"]), group=p["groups"])
        notes, emulated = [], False
        padding, shape, op = p["padding"], p["output_shape"], list(p["output_padding"])
        if p.get("size_rule") == "keras":
            # ONNX's SAME_* with output_padding keep output = input·stride: not Keras' size. Its crops and
            # output_padding (Note [Padding forms]) are explicit pads with auto_pad NOTSET.
            if r is None:
                raise Unsupported("ONNX has no Keras size rule: an invalid call under it cannot be posed")
            attrs.update(_padding(list(r["crops"])), output_padding=list(r["output_padding"]))
            notes.append(f"padding {padding!r} with output_padding {op} (size_rule 'keras') expressed as "
                         f"pads {attrs['pads']}, output_padding {attrs['output_padding']}")
            return self._one_node(call, "ConvTranspose", attrs, notes, True)
        attrs.update(_padding(padding))
        if isinstance(padding, str):
            if shape is not None:
                attrs["output_shape"] = list(shape)
            if any(op):            # canonically invalid; ONNX defines it: let ONNX Runtime judge
                attrs["output_padding"] = op
        else:
            if shape is not None:   # ONNX ignores pads when output_shape is given: the output_padding it implies
                emulated = True
                op = list(r["output_padding"]) if r is not None else list(implied_output_padding(p, call.arrays["x"].shape))
                notes.append(f"output_shape {shape} with explicit padding expressed as output_padding={op} "
                             "(ONNX ignores pads when output_shape is given)")
            if any(op) or shape is not None:
                attrs["output_padding"] = op
        return self._one_node(call, "ConvTranspose", attrs, notes, emulated)

    def conv2d(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        attrs = dict(kernel_shape=list(p["kernel_size"]), strides=list(p["stride"]),
                     dilations=list(p["dilation"]), group=p["groups"])
        program = self._one_node(call, "Conv", {**attrs, **_padding(p["padding"])}, [], False)
        if not isinstance(p["padding"], str) or p["padding"] == "valid" or r is None:
            return program
        # ONNX Runtime's Conv kernel refuses dilation with SAME_UPPER/SAME_LOWER (a gap of the kernel: the ONNX
        # spec allows it); the pads the mode resolves to are the same call.
        explicit = self._one_node(call, "Conv", {**attrs, **_padding(list(r["pads"]))}, [], True)
        note = (f"padding {p['padding']!r} expressed as its pads {_pads(*r['pads'])}: ONNX Runtime's Conv "
                "refuses dilation with auto_pad ({error})")
        return replace(program, fallback=Fallback(SAME_DILATION_GAP, explicit, note))

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "AveragePool", {"count_include_pad": int(call.params["count_include_pad"])})

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "MaxPool", {"dilations": list(call.params["dilation"])})

    def _pool(self, call: Call, op_type: str, extra: dict) -> Program:
        gap = pooling_gaps.onnxruntime_gap(call.op, call.params, call.resolved, call.dtype)
        if gap:
            raise Unsupported(gap)
        return self._one_node(call, op_type, {**_window(call.params), **extra}, [], False)

    # ---------------------------------------------------------------- the model and its session

    def _one_node(self, call: Call, op_type: str, attrs: dict, notes: list, emulated: bool) -> Program:
        """Operands cast to the case dtype, the one-node model, a CPU session, its output in the case layout."""
        operands = tuple(name for name in ("x", "w", "b") if name in call.arrays)
        if call.layout == "NHWC":
            emulated = True
            notes = [*notes, "NHWC emulated: ONNX is NCHW only; the NCHW input is fed, the output transposed back"]
        element = Attr(f"onnx.TensorProto.{ELEMENT[call.dtype]}")
        names = [n.upper() for n in operands]
        steps = [Step(n.upper(), Expr("numpy.ascontiguousarray", (Ref(n),), {"dtype": Attr(NUMPY[call.dtype])}),
                      "prepare") for n in operands]
        inputs = [Expr("onnx.helper.make_tensor_value_info", (n, element, list(call.arrays[o].shape)))
                  for n, o in zip(names, operands)]
        graph = Expr("onnx.helper.make_graph",
                     ([Ref("node")], "conform", inputs, [Expr("onnx.helper.make_tensor_value_info", ("Y", element, None))]))
        steps += [
            Step("node", Expr("onnx.helper.make_node", (op_type, names, ["Y"]), attrs)),
            Step("model", Expr("onnx.helper.make_model", (graph,),
                               {"opset_imports": [Expr("onnx.helper.make_opsetid", ("", OPSET))],
                                "ir_version": IR_VERSION})),
            Step("session", Expr("onnxruntime.InferenceSession", (Expr(Method(Ref("model"), "SerializeToString")),),
                                 {"providers": ["CPUExecutionProvider"]})),
            Step("y", Expr(Method(Expr(Method(Ref("session"), "run"), (None, {n: Ref(n) for n in names})), "pop")),
                 timed=True, comment="the list of outputs holds one, Y"),
        ]
        if call.layout == "NHWC":
            steps.append(Step("y", Expr("numpy.ascontiguousarray",
                                        (Expr(Method(Ref("y"), "transpose"), (0, 2, 3, 1)),)), "finish"))
        imports = (Import("numpy"), Import("onnx"), Import("onnx.helper"), Import("onnxruntime"))
        if call.dtype == "bfloat16":
            imports += (Import("ml_dtypes"),)
        return Program("onnxruntime", imports, operands, tuple(steps), "y", emulated, tuple(notes))
