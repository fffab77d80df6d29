"""What the ONNX fixture generators share (scripts/onnx/make_fixtures.py and
transformer_fixtures.py): the seeded generator the older fixtures draw from in turn, weight and
initializer helpers, and `save`, which writes a fixture with its test data computed by ONNX
Runtime and its hand-counted MACs."""
import json, os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20261129)


def w(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def save(root, name, model, x, macs, note, external=False):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    onnx.checker.check_model(model)
    path = os.path.join(d, "model.onnx")
    if external:
        # onnx appends to an existing data file: start from none.
        if os.path.exists(os.path.join(d, "weights.bin")):
            os.remove(os.path.join(d, "weights.bin"))
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    else:
        onnx.save_model(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, sess.get_inputs()[0].name).SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, sess.get_outputs()[0].name).SerializeToString())
    with open(os.path.join(d, "expect.json"), "w") as f:
        json.dump({"macs_per_example": macs, "note": note,
                   "onnxruntime": ort.__version__, "onnx": onnx.__version__}, f, indent=1)
        f.write("\n")
    print(f"{name}: input {x.shape} -> output {y.shape}, {macs} MACs/example")


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def c(name, v):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))


def bn(n, inits, x, y, ch, name):
    for k, v in [("s", 1 + w(ch, scale=0.1)), ("b", w(ch, scale=0.1)), ("m", w(ch, scale=0.1)),
                 ("v", 1 + np.abs(w(ch, scale=0.1)))]:
        inits.append(init(f"{name}.{k}", v))
    n.append(helper.make_node("BatchNormalization", [x] + [f"{name}.{k}" for k in "sbmv"], [y], name=name))


def save_multi(root, name, model, feeds, macs, note, unmasked=None):
    """A fixture with several inputs and outputs: `feeds` lists (input name, array) in the
    graph's order; test data `input_K.pb` / `output_K.pb` in the graph's order, computed by ONNX
    Runtime. `unmasked`: the feeds with every attention mask all ones; the outputs must then
    differ (the test data's padded example is one a mask-ignoring import cannot match)."""
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    onnx.checker.check_model(model)
    path = os.path.join(d, "model.onnx")
    onnx.save_model(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ys = sess.run(None, dict(feeds))
    if unmasked is not None:
        ys_open = sess.run(None, dict(unmasked))
        gap = max(float(np.abs(a - b).max()) for a, b in zip(ys, ys_open))
        assert gap > 1e-2, f"{name}: the mask changes the outputs by only {gap}"
    for k, (nm, x) in enumerate(feeds):
        with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(x, nm).SerializeToString())
    for k, (o, y) in enumerate(zip(sess.get_outputs(), ys)):
        with open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(y, o.name).SerializeToString())
    with open(os.path.join(d, "expect.json"), "w") as f:
        json.dump({"macs_per_example": macs, "note": note,
                   "onnxruntime": ort.__version__, "onnx": onnx.__version__}, f, indent=1)
        f.write("\n")
    shapes = ", ".join(f"{nm} {x.shape}" for nm, x in feeds)
    print(f"{name}: inputs {shapes} -> outputs {[y.shape for y in ys]}, {macs} MACs/example")
