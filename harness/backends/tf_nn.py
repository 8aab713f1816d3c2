"""Backend ``tf.nn``: ``tf.nn.conv2d_transpose``.

Native parameters: ``padding='SAME'|'VALID'|explicit list``, ``output_shape``,
``strides``, ``dilations`` and ``data_format`` (NHWC and NCHW both run on this
CPU build, so the case's layout is passed through). Filters are
``(kh, kw, C_out/groups, C_in)``: TensorFlow infers groups from the filter's
depth (``Conv2DBackpropInput`` is the gradient of a grouped forward conv), so
groups are native too.

This CPU build's kernel for explicit padding (``Conv2DCustomBackpropInputOp``)
supports neither NCHW, nor dilation > 1, nor groups: NCHW is then run in NHWC
(marked emulated); dilation and groups with explicit padding are reported
``unsupported`` with TensorFlow's message. SAME/VALID go through oneDNN,
which has both in float16/bfloat16/float32; float64 is not a oneDNN type and
falls back to the explicit-padding kernel's limits.

TensorFlow has no ``output_padding`` and no bias: output padding is requested
through ``output_shape`` (the size it implies) and bias through
``tf.nn.bias_add``; both are marked emulated.
"""

from __future__ import annotations

import os

from harness.backends.base import Backend, Call, Native, NativeParam, Unsupported, first_line, fmt

#: Messages of TensorFlow's CPU kernels that mean "this build cannot run it", not "invalid call".
#: Conv2DCustomBackpropInputOp (explicit padding, and float64) has no dilation and no groups.
CPU_CAPABILITY_GAPS = (
    "do not yet support dilation rates larger than 1",
    "Gradients for grouped convolutions are not supported on CPU",
)


def requested_output_hw(params: dict, resolved, x_shape) -> tuple[int, int]:
    """The output size TF is asked for (its ``output_shape`` is mandatory): the resolved
    size, or for a call the semantics rejects the size its parameters literally imply,
    so that TensorFlow judges the call itself."""
    if resolved is not None:
        return tuple(resolved["out_hw"])
    if params["output_shape"] is not None:
        return tuple(params["output_shape"])
    sizes = []
    for axis, size in enumerate(x_shape[2:]):
        k, s, d = params["kernel_size"][axis], params["stride"][axis], params["dilation"][axis]
        full = (size - 1) * s + d * (k - 1) + 1
        if params["padding"] == "same":
            sizes.append(size * s)
        elif params["padding"] == "valid":
            sizes.append(full)
        else:
            lo, hi = params["padding"][2 * axis: 2 * axis + 2]
            sizes.append(full - lo - hi + params["output_padding"][axis])
    return tuple(sizes)


def native_kwargs(params: dict, resolved, x_shape, layout: str) -> dict:
    """The keyword arguments of ``tf.nn.conv2d_transpose`` for a call in ``layout``.

    ``x_shape`` is the canonical NCHW input shape. The adapter and the
    standalone reproducer (``harness.report.repro_scripts``) both build the call
    from this, so the two cannot drift apart.
    """
    n = x_shape[0]
    oh, ow = requested_output_hw(params, resolved, x_shape)
    c_out = params["out_channels"]
    output_shape = [n, oh, ow, c_out] if layout == "NHWC" else [n, c_out, oh, ow]
    if isinstance(params["padding"], str):
        padding = params["padding"].upper()
    else:
        t, b, left, right = params["padding"]
        padding = ([[0, 0], [t, b], [left, right], [0, 0]] if layout == "NHWC"
                   else [[0, 0], [0, 0], [t, b], [left, right]])
    return dict(output_shape=output_shape, strides=list(params["stride"]), padding=padding,
                data_format=layout, dilations=list(params["dilation"]))


class TfNnBackend(Backend):
    id = "tf.nn"
    framework = "tensorflow"
    distribution = "tensorflow-cpu"
    import_name = "tensorflow"
    resident_bytes = 640 << 20      # measured 551 MiB after setup
    PARAMETERS = {"conv2d_transpose": {
        "x": NativeParam("input", "Tensor (N, H, W, C_in) or (N, C_in, H, W)", "in data_format order", position=0),
        "w": NativeParam("filters", "Tensor (kh, kw, C_out/groups, C_in)", "", position=1),
        "kernel_size": NativeParam(None, "", "no parameter: filters.shape[0:2]", via="filters"),
        "in_channels": NativeParam(None, "", "no parameter: filters.shape[3], must equal the input's channels",
                                   via="filters"),
        "out_channels": NativeParam(None, "", "no parameter: the C of output_shape", via="output_shape"),
        "output_shape": NativeParam("output_shape", "1-D, 4 ints in data_format order",
                                    "required; rejected when the forward conv of it does not give the input"),
        "stride": NativeParam("strides", "int or list of 1, 2 or 4 ints", "4 ints in data_format order"),
        "padding": NativeParam("padding", "[[0, 0], [t, b], [l, r], [0, 0]] (NHWC) or [[0, 0], [0, 0], [t, b], "
                               "[l, r]] (NCHW)", "CPU: no dilation or groups with explicit padding"),
        "padding_mode": NativeParam("padding", "'SAME' | 'VALID' | explicit list", "default 'SAME'"),
        "output_padding": NativeParam(None, "", "no parameter: requested through output_shape (the size it "
                                      "implies)", emulated=True),
        "dilation": NativeParam("dilations", "int or list of 1, 2 or 4 ints",
                                "1 on N and C; CPU: only SAME/VALID, not float64"),
        "groups": NativeParam(None, "", "no parameter: output channels / filters.shape[2]; CPU: only "
                              "SAME/VALID, not float64", via="filters"),
        "bias": NativeParam(None, "", "no bias: tf.nn.bias_add after the call", emulated=True),
        "b": NativeParam(None, "", "no bias: tf.nn.bias_add(y, bias)", emulated=True),
        "layout": NativeParam("data_format", "'NHWC' | 'NCHW'", "default 'NHWC'; CPU: explicit padding only NHWC"),
        "dtype": NativeParam(None, "", "the tensors' dtype: float16, bfloat16, float32, float64", via="input"),
        "name": NativeParam("name", "str", "the op's name; no effect on values"),
    }}
    # No `accumulation` override: explicit padding runs Eigen's Conv2DCustomBackpropInputOp, which
    # accumulates float16/bfloat16 in their own precision (measured: up to 2x the float32-accumulation
    # bound), so the conservative default (the case dtype) is the honest declaration.

    def setup(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        self.tf = tf
        self.dtypes = {"float16": tf.float16, "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64}

    def _tensor(self, array, dtype):
        # Values are exactly representable in `dtype`; go through float64 -> dtype once.
        return self.tf.cast(self.tf.constant(array, self.tf.float64), self.dtypes[dtype])

    def conv2d_transpose(self, call: Call) -> Native:
        try:
            return self._conv2d_transpose(call, call.layout)
        except self.tf.errors.OpError as exc:
            if any(gap in str(exc) for gap in CPU_CAPABILITY_GAPS):
                raise Unsupported(f"TensorFlow CPU kernel: {first_line(str(exc))}") from None
            # TF's CPU kernel Conv2DCustomBackpropInputOp (explicit padding) "only supports NHWC":
            # a capability gap of this build, not a semantic answer. Run in NHWC and say so.
            if call.layout != "NCHW" or "only supports NHWC" not in str(exc):
                raise
            try:
                native = self._conv2d_transpose(call, "NHWC")
            except self.tf.errors.OpError as again:
                if any(gap in str(again) for gap in CPU_CAPABILITY_GAPS):
                    raise Unsupported(f"TensorFlow CPU kernel: {first_line(str(again))}") from None
                raise
            native.output = native.output.transpose(0, 3, 1, 2)
            native.emulated = True
            native.notes.insert(0, "NCHW emulated: this TF CPU kernel only supports NHWC for explicit padding "
                                   f"({first_line(str(exc))[:120]}); input transposed to NHWC, output back")
            return native

    def _conv2d_transpose(self, call: Call, layout: str) -> Native:
        tf, p = self.tf, call.params
        if isinstance(p["padding"], str) and any(p["output_padding"]):
            raise Unsupported(f"tf.nn.conv2d_transpose has no output_padding: with padding "
                              f"{p['padding']!r} it cannot be posed (output_shape is TF's way)")
        x = call.arrays["x"].transpose(0, 2, 3, 1) if layout == "NHWC" else call.arrays["x"]
        filters = call.arrays["w"].transpose(2, 3, 1, 0)   # (C_in, C_out/g, kh, kw) -> (kh, kw, C_out/g, C_in)
        kwargs = native_kwargs(p, call.resolved, call.arrays["x"].shape, layout)
        output_shape = kwargs["output_shape"]
        notes, emulated = [], False
        if any(p["output_padding"]):
            emulated = True
            notes.append(f"output_padding {p['output_padding']} requested through output_shape {output_shape}")
        if p["groups"] > 1:
            notes.append(f"groups={p['groups']} implied by the filter depth C_out/groups")
        xt, ft = self._tensor(x, call.dtype), self._tensor(filters, call.dtype)
        bias = self._tensor(call.arrays["b"], call.dtype) if "b" in call.arrays else None

        def native():
            y = tf.nn.conv2d_transpose(xt, ft, **kwargs)
            return tf.nn.bias_add(y, bias, data_format=layout) if bias is not None else y

        y = self.timed(native)
        text = "tf.nn.conv2d_transpose(x, filters, " + ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items()) + ")"
        if bias is not None:
            emulated = True
            notes.append("bias added with tf.nn.bias_add (conv2d_transpose has no bias)")
            text = f"tf.nn.bias_add({text}, bias, data_format={layout!r})"
        out = tf.cast(y, tf.float64 if call.dtype == "float64" else tf.float32).numpy()
        return Native(out, text, emulated, notes)
