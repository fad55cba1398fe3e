"""Everything the pass did not mean to touch survives: metadata, doc strings, names, value_info, opsets,
functions, subgraphs."""
import onnx
from onnx import helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv import Options, convert


def rich_model():
    fn = helper.make_function("custom", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    then_g = helper.make_graph([helper.make_node("Identity", ["Y"], ["t"])], "then", [], [vi("t", ["n", 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["Y"], ["e"])], "else", [], [vi("e", ["n", 3])])
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"], name="fc", doc_string="the layer"),
        helper.make_node("Add", ["h", "b"], ["Y"], name="fc_bias"),
        helper.make_node("Relu", ["Y"], ["r"], name="relu", doc_string="kept node doc"),
        helper.make_node("Twice", ["r"], ["Z"], name="twice", domain="custom"),
        helper.make_node("If", ["cond"], ["branch"], name="if", then_branch=then_g, else_branch=else_g),
    ]
    m = make_model(nodes, [vi("X", ["n", 4]), vi("cond", [], onnx.TensorProto.BOOL)],
                   [vi("Z", ["n", 3]), vi("branch", ["n", 3])], [init("W", rand((4, 3))), init("b", rand(3))])
    m.opset_import.append(helper.make_opsetid("custom", 1))
    m.functions.append(fn)
    m.doc_string = "model doc"
    m.graph.doc_string = "graph doc"
    m.domain = "ai.example"
    m.model_version = 7
    m.producer_name, m.producer_version = "exporter", "9.9"
    helper.set_model_props(m, {"author": "me", "training_run": "42"})
    m.graph.value_info.extend([vi("r", ["n", 3]), vi("h", ["n", 3])])
    m.graph.input[0].doc_string = "input doc"
    return m


def test_everything_untouched_survives():
    m = rich_model()
    new, report = convert(m)
    assert report.verified, report.text()
    assert [c.name for c in report.converted] == ["fc"]
    for field in ("doc_string", "domain", "model_version", "producer_name", "producer_version", "ir_version"):
        assert getattr(new, field) == getattr(m, field), field
    assert list(new.metadata_props) == list(m.metadata_props)
    assert list(new.opset_import) == list(m.opset_import)
    assert list(new.functions) == list(m.functions)
    assert new.graph.doc_string == "graph doc" and new.graph.name == m.graph.name
    assert list(new.graph.input) == list(m.graph.input)
    assert list(new.graph.output) == list(m.graph.output)
    kept = {n.name: n for n in new.graph.node}
    for name in ("relu", "twice", "if"):
        assert kept[name] == next(n for n in m.graph.node if n.name == name), name
    # value_info of untouched tensors stays; that of 'h', which the fused layer no longer produces, goes
    assert [v.name for v in new.graph.value_info] == ["r"]


def test_input_model_is_not_modified():
    m = rich_model()
    before = m.SerializeToString()
    convert(m, Options(verify=False))
    assert m.SerializeToString() == before


def test_everything_untouched_survives_the_written_file(tmp_path):
    """The same through convert_file, whose output is streamed by canonical.py (single file) or external.py (with
    external data); the single file is byte for byte what onnx.save writes for convert()'s model."""
    from passes.fc_to_conv import convert_file
    m = rich_model()
    for external in (False, True):
        src = tmp_path / f"in_{external}.onnx"
        onnx.save_model(onnx.ModelProto.FromString(m.SerializeToString()), str(src), save_as_external_data=external,
                        location=f"in_{external}.data", size_threshold=0)
        out = tmp_path / f"out_{external}.onnx"
        report = convert_file(str(src), str(out))
        assert report.written and report.verified, report.text()
        new = onnx.load(str(out))
        expected, _ = convert(m, Options(verify=False))
        if not external:
            assert out.read_bytes() == expected.SerializeToString()
        for field in ("doc_string", "domain", "model_version", "producer_name", "producer_version", "ir_version"):
            assert getattr(new, field) == getattr(m, field), field
        assert list(new.metadata_props) == list(m.metadata_props)
        assert list(new.opset_import) == list(m.opset_import) and list(new.functions) == list(m.functions)
        assert new.graph.doc_string == "graph doc" and list(new.graph.input) == list(m.graph.input)
        assert list(new.graph.output) == list(m.graph.output) and [v.name for v in new.graph.value_info] == ["r"]
        assert [n.name for n in new.graph.node] == [n.name for n in expected.graph.node]
        assert sorted(t.name for t in new.graph.initializer) == sorted(t.name for t in expected.graph.initializer)
        for t in new.graph.initializer:
            ref = next(e for e in expected.graph.initializer if e.name == t.name)
            assert (onnx.numpy_helper.to_array(t) == onnx.numpy_helper.to_array(ref)).all(), t.name
