

# ---------------------------------------------------------------- what a surface does not say

#: (surface, op, native, input shape, the parameter the error must name): unknown names, wrong types, and
#: values the canonical semantics cannot express.
REFUSED = [
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2, "pad": 1},
     [1, 4, 4, 2], "pad"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2,
                                   "padding": "same"}, [1, 4, 4, 2], "padding"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": [2, 2, 2, 1]},
     [1, 4, 4, 2], "strides"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 3], "output_shape": [1, 8, 8, 4], "strides": 2},
     [1, 4, 4, 2], "filters"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2,
                                   "padding": [[1, 0], [0, 0], [0, 0], [0, 0]]}, [1, 4, 4, 2], "padding"),
    ("tf.nn", "conv2d", {"filters": [3, 3, 2, 4], "strides": "1", "padding": "VALID"}, [1, 4, 4, 2], "strides"),
    ("tf.nn", "conv2d_transpose", {"output_shape": [1, 8, 8, 4], "strides": 2}, [1, 4, 4, 2], "filters"),
    ("tf.keras", "conv2d_transpose", {"filters": 4, "kernel_size": 3, "activation": "relu"}, [1, 4, 4, 2],
     "activation"),
    ("tf.keras", "conv2d_transpose", {"filters": 4, "kernel_size": 3, "groups": 2}, [1, 4, 4, 2], "groups"),
    ("tf.keras", "conv2d", {"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, [1, 9, 9, 2],
     "dilation_rate"),
    ("tf.keras", "conv2d", {"filters": 4, "kernel_size": 3, "padding": "causal"}, [1, 9, 9, 2], "padding"),
    ("tf.keras", "avg_pool2d", {"pool_size": 2, "use_bias": True}, [1, 9, 9, 2], "use_bias"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding_mode":
                                      "reflect"}, [1, 2, 4, 4], "padding_mode"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, [1, 2, 4, 4],
     "in_channels"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2,
                                      "output_padding": 1, "output_size": [9, 9]}, [1, 2, 4, 4], "output_padding"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": "same"},
     [1, 2, 4, 4], "padding"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": "same"},
     [1, 2, 4, 4], "padding"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "bias": 1}, [1, 2, 4, 4], "bias"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": (3, 3, 3)}, [1, 2, 4, 4],
     "kernel_size"),
    ("torch.nn", "avg_pool2d", {"kernel_size": 2, "divisor_override": 3}, [1, 2, 4, 4], "divisor_override"),
    ("torch.functional", "max_pool2d", {"kernel_size": 2, "return_indices": True}, [1, 2, 4, 4], "return_indices"),
    ("torch.functional", "conv2d_transpose", {"weight": [3, 4, 3, 3]}, [1, 2, 4, 4], "weight"),
    ("torch.functional", "conv2d_transpose", {"weight": [2, 4, 3, 3], "stride": 0}, [1, 2, 4, 4], "stride"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
     [1, 2, 4, 4], "padding"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "pad_mode": "SAME"},
     [1, 2, 4, 4], "pad_mode"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3,
                                          "data_format": "NCHW"}, [1, 2, 4, 4], "data_format"),
    ("mindspore.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": (1, 1)},
     [1, 2, 4, 4], "padding"),
    ("mindspore.nn", "max_pool2d", {"kernel_size": 2, "pad_mode": "same", "dilation": 2}, [1, 2, 4, 4], "dilation"),
    ("mindspore.nn", "avg_pool2d", {"kernel_size": 2, "divisor_override": 2}, [1, 2, 4, 4], "divisor_override"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 2, "kernel_size": 3, "input_size": [1, 4, 6, 6],
                                           "mode": 2}, [1, 2, 4, 4], "mode"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 4, "kernel_size": 3, "input_size": [1, 4, 6, 6]},
     [1, 2, 4, 4], "out_channel"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 2, "kernel_size": 3}, [1, 2, 4, 4], "input_size"),
    ("mindspore.ops", "avg_pool2d", {"kernel_size": 2, "stride": 2, "divisor_override": 3}, [1, 2, 4, 4],
     "divisor_override"),
    ("mindspore.ops", "max_pool2d", {"kernel_size": 2, "strides": 2, "pad_mode": "pad"}, [1, 2, 4, 4], "pad_mode"),
]


@pytest.mark.parametrize("surface, op, native, input_shape, param", REFUSED,
                         ids=[f"{s}-{o}-{p}" for s, o, _, _, p in REFUSED])
def test_unknown_ill_typed_and_inexpressible_parameters_are_named(surface, op, native, input_shape, param):
    with pytest.raises(NativeParamError) as info:
        backend_class(surface).from_native(op, native, input_shape)
    assert info.value.param == param, str(info.value)
    assert str(info.value).startswith(f"{param}: ")


def test_an_unknown_name_lists_the_known_ones_and_a_bad_input_shape_is_named():
    with pytest.raises(NativeParamError, match="its parameters: in_channels, out_channels, kernel_size"):
        backend_class("torch.nn").from_native("conv2d_transpose", {"in_chanels": 2}, [1, 2, 4, 4])
    with pytest.raises(NativeParamError) as info:
        backend_class("torch.nn").from_native("avg_pool2d", {"kernel_size": 2}, [1, 2, 4])
    assert info.value.param == "input"
    with pytest.raises(NativeParamError) as info:
        backend_class("numpy").from_native("conv2d", {}, [1, 2, 4, 4])
    assert info.value.param == "op"


@pytest.mark.parametrize("surface, native, canonical", [
    # The seed page's examples, and the Keras/torch U-Net upsampler of issue 14.
    ("tf.nn", {"filters": [4, 4, 64, 3], "output_shape": [1, 19, 53, 64], "strides": 1,
               "padding": [[0, 0], [0, 0], [0, 0], [0, 0]]},
     {"padding": [0, 0, 0, 0], "output_shape": [19, 53], "layout": "NHWC", "out_channels": 64}),
    ("mindspore.nn", {"in_channels": 3, "out_channels": 64, "kernel_size": 4, "weight_init": "normal",
                      "pad_mode": "pad"}, {"padding": [0, 0, 0, 0], "layout": "NCHW", "bias": False}),
    ("tf.keras", {"filters": 16, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1},
     {"padding": "same", "size_rule": "keras", "output_padding": [1, 1], "bias": True, "layout": "NHWC"}),
    ("torch.nn", {"in_channels": 3, "out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1,
                  "output_padding": 1}, {"padding": [1, 1, 1, 1], "output_padding": [1, 1], "bias": True}),
    ("tf.keras", {"filters": 16, "kernel_size": 2, "strides": 3, "padding": "valid"},
     {"padding": "valid", "size_rule": "keras", "output_padding": [1, 1]}),
])
def test_documented_examples_read_as_their_canonical_meaning(surface, native, canonical):
    input_shape = [1, 16, 50, 3] if surface in ("tf.nn", "tf.keras") else [1, 3, 16, 50]
    fields = backend_class(surface).from_native("conv2d_transpose", native, input_shape)
    assert {k: fields[k] for k in canonical} == canonical
