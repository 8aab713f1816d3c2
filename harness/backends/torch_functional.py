"""Backend ``torch.functional``: ``torch.nn.functional.conv_transpose2d``.

Native parameters: ``stride``, symmetric ``padding=(ph, pw)``,
``output_padding``, ``groups``, ``dilation``, ``bias``; weights are already in
PyTorch's ``(C_in, C_out/groups, kh, kw)``. The functional API has no
``'same'``/``'valid'``, no asymmetric padding, no ``output_size`` and no NHWC
layout; those are emulated and marked:

* symmetric crops (``valid``, even ``same``, ``output_shape``) become
  ``padding``/``output_padding``;
* asymmetric crops are taken from the full output (``padding=0``) by slicing,
  with zeros past its end and the bias added afterwards;
* NHWC input is permuted to NCHW and the output back.
"""

from __future__ import annotations

from harness.backends.base import Backend, Call, Native, Unsupported, fmt, from_nchw


class TorchFunctionalBackend(Backend):
    id = "torch.functional"
    framework = "torch"
    distribution = "torch"
    import_name = "torch"
    accumulation = {"float16": "float32", "bfloat16": "float32"}

    def setup(self) -> None:
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        self.dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                       "float32": torch.float32, "float64": torch.float64}

    def _tensor(self, array, dtype):
        return self.torch.from_numpy(array).to(self.dtypes[dtype])

    def conv2d_transpose(self, call: Call) -> Native:
        p, r = call.params, call.resolved
        x = self._tensor(call.arrays["x"], call.dtype)
        w = self._tensor(call.arrays["w"], call.dtype)
        b = self._tensor(call.arrays["b"], call.dtype) if "b" in call.arrays else None
        notes, emulated = [], False
        if call.layout == "NHWC":
            notes.append("NHWC emulated: input permuted to NCHW, output permuted back")
            emulated = True
        kw = dict(stride=tuple(p["stride"]), groups=p["groups"], dilation=tuple(p["dilation"]))
        slice_from_full = None
        if r is None:
            # A call the semantics rejects: pose it as natively as possible and let torch judge.
            if p["out_channels"] % p["groups"]:
                raise Unsupported("conv_transpose2d has no out_channels: it is weight.shape[1]·groups, so "
                                  "out_channels not divisible by groups cannot be posed")
            if isinstance(p["padding"], str):
                if p["output_shape"] is not None:
                    raise Unsupported("torch.nn.functional.conv_transpose2d has no output_size: "
                                      "an unreachable output_shape cannot be posed")
                notes.append(f"padding {p['padding']!r} has no native form; padding=0 passed so torch judges "
                             "the other parameters")
                emulated = True
                kw.update(padding=(0, 0), output_padding=tuple(p["output_padding"]))
            else:
                t, bo, l, rt = p["padding"]
                if t != bo or l != rt:
                    raise Unsupported("asymmetric padding has no native form in torch; the invalid call "
                                      "cannot be posed")
                op = tuple(p["output_padding"])
                if p["output_shape"] is not None:
                    # As for a valid call: output_shape becomes the output_padding it implies.
                    emulated, op = True, _implied_output_padding(p, call.arrays["x"].shape)
                    notes.append(f"output_shape {p['output_shape']} expressed as output_padding={op}")
                kw.update(padding=(t, l), output_padding=op)
        else:
            t, bo, l, rt = r["crops"]
            if t == bo and l == rt:
                kw.update(padding=(t, l), output_padding=tuple(r["output_padding"]))
                if isinstance(p["padding"], str) or p["output_shape"] is not None:
                    emulated = True
                    notes.append(f"padding {p['padding']!r} / output_shape {p['output_shape']} expressed as "
                                 f"padding={kw['padding']}, output_padding={kw['output_padding']}")
            else:
                emulated = True
                slice_from_full = (t, l, *r["out_hw"])
                kw.update(padding=(0, 0), output_padding=(0, 0))
                notes.append(f"asymmetric crops {tuple(r['crops'])}: full output (padding=0) sliced, "
                             "bias added after slicing")
        bias_arg = None if slice_from_full else b
        y = self.timed(self.F.conv_transpose2d, x, w, bias_arg, **kw)
        if slice_from_full:
            top, left, oh, ow = slice_from_full
            y = y[:, :, top:top + oh, left:left + ow]
            pad_h, pad_w = oh - y.shape[2], ow - y.shape[3]
            if pad_h or pad_w:  # rows/cols past the full output are zeros
                y = self.F.pad(y, (0, pad_w, 0, pad_h))
            if b is not None:
                y = y + b.reshape(1, -1, 1, 1)
        call_text = (f"torch.nn.functional.conv_transpose2d(x, weight, {'bias' if bias_arg is not None else 'None'}, "
                     + ", ".join(f"{k}={fmt(v)}" for k, v in kw.items()) + ")")
        out = y.to(self.torch.float32 if call.dtype != "float64" else self.torch.float64).numpy()
        return Native(from_nchw(out, call.layout), call_text, emulated, notes)
