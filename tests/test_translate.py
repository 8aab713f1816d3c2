"""``conform translate`` (harness/translate, Note [Translation]): the issue's Keras U-Net layer to torch.nn and
the naive torch call back to Keras, through the real frameworks; the seed page's example 1 from tf.nn to
mindspore.nn; a translation that holds only on the given size; what the target cannot express; bad input."""

from __future__ import annotations

import pytest

from harness import envs
from harness.cli import main
from harness.translate import parse
from harness.translate.core import translate
from harness.translate.parse import TranslateInputError
from tests.helpers import ROOT, conform

UNET = 'Conv2DTranspose(filters=16, kernel_size=3, strides=2, padding="same", output_padding=1)'
NAIVE_TORCH = "ConvTranspose2d(8, 16, 3, stride=2, padding=1, output_padding=1, bias=False)"


def _needs(*backends: str) -> None:
    for bid in backends:
        available, reason = envs.availability(bid)
        if not available:
            pytest.skip(f"{bid}: {reason}")


def _line(stdout: str, prefix: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(prefix))


# ---------------------------------------------------------------- through the real frameworks

def test_keras_unet_upsampler_to_torch_holds_on_a_sweep_and_is_not_the_naive_call():
    _needs("tf.keras", "torch.nn")
    result = conform("translate", "--from", "tf.keras", "--to", "torch.nn", UNET, "--input", "1,15,15,8",
                     "--verify-shapes", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Keras crops the odd row/column at the bottom/right; torch's padding=1 would crop it at the top/left.
    assert "crops (0, 1) rows and (0, 1) columns, output 30x30" in _line(out, "    on input 1×15×15×8 (NHWC)")
    call = _line(out, "torch.nn: ")
    assert call == ("torch.nn: torch.nn.ConvTranspose2d(in_channels=8, out_channels=16, kernel_size=3, stride=2, "
                    "bias=False)")
    assert "padding=1" not in call and "output_padding=1" not in call
    # The crop torch has no parameter for: the full output sliced, then the bias (the program's own code).
    assert "asymmetric crops (0, 1, 0, 1): full output (padding=0) sliced" in out
    assert "        y = y[:, :, 0:30, 0:30]" in out.splitlines()
    assert "        y = torch.add(y, bias.reshape(1, -1, 1, 1))" in out.splitlines()
    assert _line(out, "verified on 4 shapes (NCHW 1×8×15×15, 1×8×16×16, 1×8×16×15, 1×8×15×16)")


def test_naive_torch_call_to_keras_needs_a_cropping_layer():
    """The usual translation, read the other way: Keras has no explicit crop, so the translation is 'valid'
    and a Cropping2D layer that drops the top row and left column — not 'same' with output_padding=1 (in
    channels_last: Keras' channels_first conv_transpose falls back to NHWC on TensorFlow's CPU kernels)."""
    _needs("tf.keras", "torch.nn")
    result = conform("translate", "--from", "torch.nn", "--to", "tf.keras", NAIVE_TORCH, "--input", "1,8,15,15",
                     "--verify-shapes", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "crops (1, 0) rows and (1, 0) columns, output 30x30" in out
    call = _line(out, "tf.keras: ")
    assert "padding='same'" not in call and "output_padding=0" in call
    assert "    emulated: the call alone is not the translation; tf.keras has no native form of:" in out
    assert ("        crop = keras.layers.Cropping2D(cropping=((1, 0), (1, 0)), data_format='channels_last', "
            "dtype='float32')") in out.splitlines()
    assert _line(out, "verified on 2 shapes")


def test_seed_page_example_1_tf_nn_to_mindspore_nn():
    """The page's example 1: TF's explicit zero padding with output_shape [1, 19, 53, 64] is
    Conv2dTranspose(3, 64, kernel_size=4, pad_mode='pad'), run in TensorFlow and MindSpore. The output_shape
    fixes the input, so the other sizes are left out, and said so."""
    _needs("tf.nn", "mindspore.nn")
    result = conform("translate", "--from", "tf.nn", "--to", "mindspore.nn",
                     "tf.nn.conv2d_transpose(x, filters=[4, 4, 64, 3], output_shape=[1, 19, 53, 64], strides=1, "
                     "padding=[[0, 0], [0, 0], [0, 0], [0, 0]])", "--input", "1,16,50,3")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert _line(out, "mindspore.nn: ") == ("mindspore.nn: mindspore.nn.Conv2dTranspose(in_channels=3, "
                                            "out_channels=64, kernel_size=4, pad_mode='pad')")
    assert "emulated" not in out
    assert _line(out, "verified on 1 shape (NCHW 1×3×16×50)")
    assert "5 fewer than asked: the source call is valid on no other input size tried" in out


def test_a_translation_that_depends_on_the_input_size_breaks_at_the_next_size():
    """Keras' Conv2D 'same' with stride 2 pads (0, 1) on even sizes and (1, 1) on odd ones: torch's call for
    16×16 (an F.pad first) is not the call for 17×17."""
    _needs("tf.keras", "torch.nn")
    result = conform("translate", "--from", "tf.keras", "--to", "torch.nn", 'Conv2D(16, 3, strides=2, padding="same")',
                     "--verify-shapes", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "x_padded = torch.nn.functional.pad(x, (0, 1, 0, 1))" in result.stdout
    assert _line(result.stdout, "breaks at input 1×3×17×17 (NCHW): the translation depends on the input size: "
                                "torch.nn needs padding=[1, 1] (printed: [0, 0]) there")
    assert "(held on 1×3×16×16)" in result.stdout


# ---------------------------------------------------------------- without running anything

def test_what_the_target_cannot_express_is_exit_1_with_the_reason(capsys):
    code = main(["translate", "--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3, groups=2)"])
    out = capsys.readouterr().out
    assert code == 1
    assert "tf.keras: cannot express this call: keras.layers.Conv2DTranspose has no groups" in out


def test_params_as_yaml_json_or_a_file_mean_the_same_call(tmp_path, capsys):
    inline = main(["translate", "--from", "tf.keras", "--to", "onnxruntime", "--op", "conv2d_transpose",
                   "--no-verify", "--params", "filters: 16\nkernel_size: 3\nstrides: 2\npadding: same"])
    first = capsys.readouterr().out
    path = tmp_path / "p.json"
    path.write_text('{"filters": 16, "kernel_size": 3, "strides": 2, "padding": "same"}')
    from_file = main(["translate", "--from", "tf.keras", "--to", "onnxruntime", "--op", "conv2d_transpose",
                      "--no-verify", "--params", str(path)])
    assert (inline, from_file) == (0, 0)
    assert capsys.readouterr().out == first
    assert ("onnxruntime: ConvTranspose(W=[3, 16, 3, 3], B=True, auto_pad='SAME_UPPER', kernel_shape=[3, 3], "
            "strides=[2, 2])") in first.splitlines()


def test_a_printed_call_reads_back_as_the_same_call():
    tr = translate("tf.keras", "torch.nn", "conv2d_transpose", {"filters": 16, "kernel_size": 4, "strides": 2,
                                                               "padding": "same"}, [1, 9, 9, 8])
    assert tr.exact and tr.minimal == {"in_channels": 8, "out_channels": 16, "kernel_size": [4, 4],
                                       "stride": [2, 2], "padding": [1, 1]}
    from harness.translate.render import call_text
    text = call_text("torch.nn", "conv2d_transpose", tr.minimal)
    assert text == "torch.nn.ConvTranspose2d(in_channels=8, out_channels=16, kernel_size=4, stride=2, padding=1)"
    callee, positional, keywords = parse.parse_call(text)
    assert (callee, positional, keywords) == ("ConvTranspose2d", [], {"in_channels": 8, "out_channels": 16,
                                                                      "kernel_size": 4, "stride": 2, "padding": 1})
    back = translate("torch.nn", "tf.keras", "conv2d_transpose", keywords, [1, 8, 9, 9])
    assert back.exact and back.minimal["padding"] == "same"


def test_the_layout_chosen_is_the_one_the_target_runs_as_printed():
    """torch is NCHW; TensorFlow's CPU pooling kernels refuse NCHW (the adapter falls back to NHWC), so the
    tf.nn call printed takes NHWC, the input transposed."""
    tr = translate("torch.nn", "tf.nn", "max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, [1, 3, 16, 16])
    assert (tr.exact, tr.layout, tr.program.fallback) == (True, "NHWC", None)
    assert tr.minimal == {"ksize": [3, 3], "strides": [2, 2], "padding": [[0, 0], [1, 1], [1, 1], [0, 0]]}


def test_the_call_is_parsed_never_evaluated():
    with pytest.raises(TranslateInputError, match="not a literal"):
        parse.parse_call("Conv2D(filters=__import__('os').getpid(), kernel_size=3)")
    with pytest.raises(TranslateInputError, match="not a literal"):
        parse.parse_call("Conv2D(16, kernel_size=k)")
    assert parse.parse_call("keras.layers.Conv2D(x, 16, (3, 3))") == ("Conv2D", [16, (3, 3)], {})
    assert parse.parse_call("nn.ConvTranspose2d(8, 16, 3)(x, output_size=[32, 32])")[2] == {"output_size": [32, 32]}


@pytest.mark.parametrize("argv, message", [
    (["--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3, paddin=1)"],
     "torch.nn: paddin: torch.nn.ConvTranspose2d has no parameter 'paddin'; its parameters: in_channels,"),
    (["--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3, stride='2')"],
     "torch.nn: stride: expected an int or 2 ints, got '2'"),
    (["--from", "tf.keras", "--to", "torch.nn", "ConvTranspose2d(16, 3)"],
     "tf.keras has no operator 'ConvTranspose2d'; known: Conv2DTranspose (conv2d_transpose), Conv2D (conv2d)"),
    (["--from", "tf.keras", "--to", "torch.nn", "Conv2DTranspose(16, 3"], "cannot parse the call"),
    (["--from", "torch", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3)"], "unknown surface 'torch'; known: tf.nn"),
    (["--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3)", "--input", "1,3,8,8"],
     "torch.nn: in_channels: in_channels = 8 must equal the input's channels 3"),
    (["--from", "tf.keras", "--to", "torch.nn", "--params", "filters: 16"], "--params needs --op"),
    (["--from", "tf.keras", "--to", "torch.nn", "--op", "conv2d", "--params", "[16, 3]"],
     "expected a mapping of native parameters"),
    (["--from", "tf.keras", "--to", "torch.nn", "Conv2D(16, 3)", "--op", "max_pool2d"],
     "Conv2D is tf.keras's conv2d, not --op max_pool2d"),
    (["--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3, 2, 1)"],
     "2 positional argument(s) past its required parameters (in_channels, out_channels, kernel_size)"),
    (["--from", "tf.nn", "--to", "tf.keras", "conv2d_transpose(filters=[3, 3, 4, 3], output_shape=[1, 9, 9, 4], "
      "strides=2, padding='SAME')", "--input", "1,8,8,3"], "the tf.nn call is one the canonical semantics rejects"),
    (["--from", "torch.nn", "--to", "tf.keras", "ConvTranspose2d(8, 16, 3, padding=None)", "--input", "1,8,15,15",
      "--no-verify"], "torch.nn: padding: torch.nn.ConvTranspose2d does not take padding=None"),
    (["--from", "tf.keras", "--to", "torch.nn", "--op", "conv2d", "--params", "no/such/params.yaml"],
     "--params 'no/such/params.yaml': the file does not exist"),
    (["--from", "tf.keras", "--to", "torch.nn", "--op", "conv2d", "--params", "params.json"],
     "--params 'params.json': the file does not exist"),
    (["--from", "tf.keras", "--to", "torch.nn", "--op", "conv2d", "--params", str(ROOT / "tests")],
     f"--params '{ROOT / 'tests'}': the file is not a regular file"),
])
def test_bad_input_is_exit_2_with_the_message(argv, message, capsys):
    assert main(["translate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_huge_stride_offers_a_bounded_number_of_spellings_lazily():
    """The output paddings below a stride of 1000×1000 are 10⁶ pairs: only the first 64 are ever built."""
    import tracemalloc

    from harness.translate.spellings import MAX_OUTPUT_PADDINGS, alternatives
    fields = {"out_channels": 4, "kernel_size": [1000, 1000], "stride": [1000, 1000], "padding": "valid",
              "output_padding": [0, 0], "dilation": [1, 1], "groups": 1, "bias": True, "output_shape": None}
    tracemalloc.start()
    try:
        found = alternatives(fields, {"crops": [0, 0, 0, 0]})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    paddings = {repr(f["output_padding"]) for f in found}
    assert len(paddings) == MAX_OUTPUT_PADDINGS          # [0, 0], the default, is the first pair too
    assert peak < 20 << 20, f"{peak / 2**20:.0f} MiB for the spellings"


def test_verifying_past_the_memory_budget_is_refused_before_anything_runs(capsys):
    code = main(["translate", "--from", "tf.keras", "--to", "torch.nn", "--input", "1,15,15,8",
                 "Conv2DTranspose(filters=16, kernel_size=100000, strides=100000)"])
    err = capsys.readouterr().err
    assert code == 2
    assert "verifying on input 1×8×15×15 (NCHW): the tf.keras side needs ~" in err
    assert "GiB (--max-memory)" in err and "Traceback" not in err
