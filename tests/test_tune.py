"""--tune (tune.py): layers whose Conv form measures slower on the toolchain are kept as FC, with the figures; the
written model never measures slower than the original. The algorithm runs on a fake toolchain whose costs are a
function of the graph (no timing noise, so each decision is exact); the real onnxruntime toolchain runs once
through the CLI."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import init, make_model, vi
from passes.fc_to_conv import Options, api, convert
from passes.fc_to_conv.toolchains import Cost
from test_cli import cli


def three_layers() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = lambda k, n: (rng.standard_normal((k, n)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="fc2"), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["y"], name="fc3")]
    return make_model(nodes, [vi("x", ["b", 8])], [vi("y", ["b", 4])],
                      [init("w1", w(8, 16)), init("w2", w(16, 16)), init("w3", w(16, 4))])


class Fake:
    """Costs by node: a Conv made from a layer named in `slow_convs` costs 100, any other Conv 1, an FC op 10,
    layout ops 2 each; `broken`: a model with any Conv does not load."""
    name, noise = "fake", 0.05

    def __init__(self, slow_convs=(), broken=False, conv=1, layout=2, slow_fcs=(), jitter=0.0):
        self.slow, self.broken, self.conv, self.calls = set(slow_convs), broken, conv, 0
        self.layout, self.slow_fcs, self.jitter = layout, set(slow_fcs), jitter

    def missing(self):
        return ""

    def _cost(self, path):
        nodes = onnx.load(path, load_external_data=False).graph.node
        if self.broken and any(n.op_type == "Conv" for n in nodes):
            return Cost(None, "cycles", error="graphAddNode() failed")
        c = 0
        for n in nodes:
            if n.op_type == "Conv":
                c += 100 if any(n.name.startswith(s + "_") for s in self.slow) else self.conv
            elif n.op_type in ("MatMul", "Gemm"):
                c += 100 if n.name in self.slow_fcs else 10
            elif n.op_type in ("Reshape", "Transpose", "Unsqueeze", "Squeeze", "Flatten"):
                c += self.layout
        return Cost(float(c), "cycles", [c * (1 + self.jitter * j) for j in (-2, -1, 0, 1, 2)])

    def measure(self, paths, rounds=5):
        self.calls += 1
        return [self._cost(p) for p in paths]


def _tuned(monkeypatch, fake, model=None):
    monkeypatch.setattr(api.toolchains, "require", lambda name, *a, **k: fake)
    out, report = convert(model or three_layers(), Options(tune=True))
    assert report.verified, report.text()
    return out, report


def _convs(model):
    return sorted(n.name for n in model.graph.node if n.op_type == "Conv")


def test_a_faster_output_costs_one_measurement_and_one_per_region(monkeypatch):
    fake = Fake()
    out, report = _tuned(monkeypatch, fake)   # fc1 -> Relu -> fc2 -> Relu -> fc3: one image, one region
    assert len(report.converted) == 3 and not report.tuned and fake.calls == 2
    t = report.tuning
    assert t.original.value == 30 and t.converted.value == t.tuned.value < 30, report.text()
    assert "tuning: measured on fake (2 measurement(s) of 5 interleaved rounds each): original 30.0 cycles" \
        in report.text()


def test_the_slow_layer_alone_is_kept_as_fc_with_its_figures(monkeypatch):
    out, report = _tuned(monkeypatch, Fake(slow_convs={"fc2"}))
    assert [s.name for s in report.tuned] == ["fc2"] and len(report.converted) == 2, report.text()
    assert [n.name for n in out.graph.node if n.op_type == "MatMul"] == ["fc2"]
    line = next(l for l in report.text().splitlines() if l.startswith("  KEPT FC"))
    assert "KEPT FC   MatMul 'fc2' (measured on fake: the model with it as MatMul" in line
    assert "as Conv 1" in line and "cycles" in line, line
    assert report.tuning.tuned.value < report.tuning.original.value
    assert not report.reverted   # a tuned layer is no numeric revert (and --strict does not fail on it)


def two_regions() -> onnx.ModelProto:
    """fc1 -> Relu -> fc2 (one image: one region), and fc3 on the Softmax of their output (a region of its own)."""
    rng = np.random.default_rng(2)
    w = lambda k, n: (rng.standard_normal((k, n)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="fc2"),
             helper.make_node("Softmax", ["h2"], ["s"], axis=-1),
             helper.make_node("MatMul", ["s", "w3"], ["y"], name="fc3")]
    return make_model(nodes, [vi("x", ["b", 8])], [vi("y", ["b", 4])],
                      [init("w1", w(8, 16)), init("w2", w(16, 16)), init("w3", w(16, 4))])


def test_regions_group_the_layers_one_image_joins():
    from passes.fc_to_conv.tune_regions import regions
    g = two_regions().graph
    assert regions(g, ["#0", "#2", "#4"]) == [["#0", "#2"], ["#4"]]
    g.node[1].op_type = "LayerNormalization"   # no element-wise path: each layer its own region
    assert regions(g, ["#4", "#0", "#2"]) == [["#0"], ["#2"], ["#4"]]
    g.node[1].op_type, g.node[1].input[:] = "Add", ["h1", "stream"]   # a residual Add: the image ends there
    assert regions(g, ["#0", "#2", "#4"]) == [["#0"], ["#2"], ["#4"]]
    g.node[1].input[:] = ["h1", "w1"]                                 # an Add of a constant runs on the image
    assert regions(g, ["#0", "#2", "#4"]) == [["#0", "#2"], ["#4"]]


def test_a_region_slower_as_convs_goes_back_whole_where_no_layer_alone_pays(monkeypatch):
    """Layout ops cost 8, a Conv 9, a MatMul 10 (fc3's 100): fc1 or fc2 put back alone leaves the other with the same
    ways in and out (51 against 50), the two together save their ways (20); fc3 as Conv saves 91 - 41."""
    fake = Fake(conv=9, layout=8, slow_fcs={"fc3"})
    out, report = _tuned(monkeypatch, fake, two_regions())
    assert [c.name for c in report.converted] == ["fc3"], report.text()
    assert [s.name for s in report.tuned] == ["fc1", "fc2"]
    assert "its region of 2 layers (fc1, fc2) as FC" in report.tuned[0].reason, report.tuned[0].reason
    assert report.tuning.tuned.value < report.tuning.converted.value < report.tuning.original.value


def test_an_output_slower_everywhere_becomes_the_original_graph(monkeypatch):
    original = three_layers()
    out, report = _tuned(monkeypatch, Fake(conv=30), original)
    assert not report.converted and len(report.tuned) == 3, report.text()
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in original.graph.node]
    assert report.tuning.tuned.value == report.tuning.original.value == 30


def test_a_doubt_at_the_last_check_goes_to_the_original(monkeypatch):
    """Rounds spread +-15% (median spread 0.15 each): the converted model at 1.077x is no slower within the spread,
    but above the 5% floor, so the written model is the original's graph."""
    out, report = _tuned(monkeypatch, Fake(conv=8.1, jitter=0.15))
    t = report.tuning
    assert t.converted.value / t.original.value == pytest.approx(32.3 / 30), report.text()
    assert not report.converted and len(report.tuned) == 3, report.text()
    assert "every layer put back" in report.tuned[0].reason
    assert t.tuned.value == t.original.value


def test_an_output_that_does_not_load_is_put_back(monkeypatch):
    out, report = _tuned(monkeypatch, Fake(broken=True))
    assert not _convs(out) and len(report.tuned) == 3, report.text()
    assert "does not load (graphAddNode() failed)" in report.text()


def test_cli_tunes_on_onnxruntime(tmp_path):
    src, out, js = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    onnx.save(three_layers(), str(src))
    r = cli(src, out, "--tune", "--tune-rounds", "2", "--report", js)
    assert r.returncode == 0, r.stderr
    assert "tuning: measured on onnxruntime (" in r.stdout and " us" in r.stdout, r.stdout
    import json
    tuning = json.loads(js.read_text())["tuning"]
    assert tuning["toolchain"] == "onnxruntime" and len(tuning["original"]["runs"]) in (2, 4, 6)


def test_cli_tune_without_a_toolchain_for_the_target_is_one_line(tmp_path):
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(three_layers(), str(src))
    r = cli(src, out, "--tune", "--target", "ethos-u")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--tune: no toolchain measures target 'ethos-u' yet (measured: onnxruntime, openvino, qnn, ncnn, rknn)" \
        in lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]


def test_cli_tunes_on_openvino(tmp_path):
    """OpenVINO's CPU plugin, static shapes (the verification's first input set), f32: its latency in the report."""
    src, out, js = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    onnx.save(three_layers(), str(src))
    r = cli(src, out, "--target", "openvino", "--tune", "--tune-rounds", "2", "--report", js)
    assert r.returncode == 0, r.stderr
    import json
    tuning = json.loads(js.read_text())["tuning"]
    assert tuning["toolchain"] == "openvino" and len(tuning["original"]["runs"]) % 2 == 0, r.stdout   # (pooled)
    assert tuning["original"]["value"] > 0 and tuning["tuned"]["value"] > 0


def test_openvino_toolchain_missing_names_the_extra(monkeypatch):
    import importlib.util
    from passes.fc_to_conv import toolchains
    from passes.fc_to_conv.errors import BadInput
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    with pytest.raises(BadInput, match=r'--tune: the openvino toolchain needs openvino: pip install -e "\.\[openvino\]"'):
        toolchains.require("openvino")


def _has_qnn():
    import importlib.util
    return importlib.util.find_spec("onnxruntime_qnn") is not None


@pytest.mark.skipif(not _has_qnn(), reason="onnxruntime-qnn is not installed (the qnn extra)")
def test_tune_on_the_qnn_htp_emulator(tmp_path):
    """--target qnn --tune measures HTP cycles summed over partitions, a median over sessions, and writes a model
    that loads on HTP with every node there."""
    import os
    import qnn_htp
    from passes.fc_to_conv import convert_file
    src, out = os.path.join(os.path.dirname(__file__), "..", "models", "mlp.onnx"), str(tmp_path / "out.onnx")
    report = convert_file(src, out, Options(target="qnn", tune=True, tune_rounds=3))
    assert report.verified and report.written, report.text()
    t = report.tuning
    assert t.toolchain == "qnn" and t.original.unit == "cycles" and len(t.original.runs) in (3, 6, 9), report.text()
    assert t.original.value > 0 and t.tuned.value > 0
    assert "tuning: measured on qnn (" in report.text() and " cycles" in report.text()
    (run,) = qnn_htp.measure([out], fp16=True)
    assert run["error"] is None and not run["cpu_nodes"], run


def test_qnn_toolchain_missing_names_the_extra(monkeypatch):
    import importlib.util
    from passes.fc_to_conv import toolchains
    from passes.fc_to_conv.errors import BadInput
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime_qnn" else real(n, *a))
    with pytest.raises(BadInput, match=r'--tune: the qnn toolchain needs .*pip install -e "\.\[qnn\]"'):
        toolchains.require("qnn")


def test_decisions_repeat_a_tuned_conversion_byte_for_byte(monkeypatch, tmp_path):
    from passes.fc_to_conv import convert_file
    src = tmp_path / "in.onnx"
    onnx.save(three_layers(), str(src))
    decisions, a, b = str(tmp_path / "d.json"), str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")
    fake = Fake(slow_convs={"fc2"})
    monkeypatch.setattr(api.toolchains, "require", lambda name, *a, **k: fake)
    tuned = convert_file(str(src), a, Options(tune=True, decisions=decisions))
    assert [s.name for s in tuned.tuned] == ["fc2"], tuned.text()
    import json
    assert [v["name"] for v in json.loads(open(decisions).read())["kept"].values()] == ["fc2"]
    calls = fake.calls
    again = convert_file(str(src), b, Options(decisions=decisions))    # no --tune: nothing measured
    assert fake.calls == calls and again.tuning is None and again.verified, again.text()
    assert [s.name for s in again.tuned] == ["fc2"] and "decided earlier" in again.tuned[0].reason
    assert open(a, "rb").read() == open(b, "rb").read()
    for report in (tuned, again):   # the layers checked on their own that were written, not fc2, kept as FC
        assert "each converted layer on its own (random activations of its input shape): 2 of 2 PASSED" \
            in report.text(), report.text()


def test_a_model_tuned_back_to_fc_whole_reports_no_layer_checked_on_its_own(monkeypatch):
    out, report = _tuned(monkeypatch, Fake(slow_convs={"fc1", "fc2", "fc3"}))
    assert not report.converted and [s.name for s in report.tuned] == ["fc1", "fc2", "fc3"], report.text()
    assert "each converted layer on its own" not in report.text(), report.text()


def test_decisions_for_another_model_are_refused_in_one_line(monkeypatch, tmp_path):
    src, other, out = tmp_path / "in.onnx", tmp_path / "other.onnx", tmp_path / "out.onnx"
    onnx.save(three_layers(), str(src))
    renamed = three_layers()
    renamed.graph.node[2].name = "proj"      # fc2 is named otherwise in the other model
    onnx.save(renamed, str(other))
    decisions = tmp_path / "d.json"
    decisions.write_text('{"fc2conv_decisions": 1, "toolchain": "fake", "kept": {"#2": {"name": "fc2", "why": "x"}}}')
    r = cli(other, out, "--decisions", decisions)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "the decisions name layer 'fc2' (#2), which this model does not have there" in lines[0]
    assert not out.exists()
    decisions.write_text("[1, 2]")
    r = cli(src, out, "--decisions", decisions)
    assert r.returncode == 2 and "not an fc2conv decisions file" in r.stderr and not out.exists(), r.stderr


def test_a_slow_spell_of_the_machine_does_not_decide():
    """CPU latency (statistic "min"): the rounds of one real run, where two rounds of the original hit a slow spell
    (103-106 us against 60-62). The fastest rounds decide: the written model, 62.2 us, is within the 5% floor of
    the original's 60.3 us, and one clearly slower is found slower. The median would have read 61.9 against 86.7."""
    from passes.fc_to_conv.tune import _slower
    original = Cost(60.3, "us", [105.9, 103.1, 61.9, 61.2, 60.3], statistic="min")
    written = Cost(62.2, "us", [89.0, 99.5, 62.2, 86.7, 62.6], statistic="min")
    assert original.spread == pytest.approx((61.2 - 60.3) / 60.3)
    assert not _slower(written, original, 0.05)
    slow = Cost(93.8, "us", [93.9, 92.5, 92.4, 93.8, 94.3], statistic="min")
    slow.value = min(slow.runs)
    assert _slower(slow, original, 0.05)
    # the emulator's noise goes both ways: its figure is the median and the spread the middle half
    cycles = Cost(10_100_000, "cycles", [10_700_000, 8_800_000, 9_900_000, 10_100_000, 10_300_000])
    assert cycles.spread == pytest.approx((10_300_000 - 9_900_000) / 10_100_000 / 2)


def test_tuning_leaves_no_file_behind(monkeypatch, tmp_path):
    """Models held in memory are written to a temporary folder to be measured; it is gone afterwards."""
    import glob
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _tuned(monkeypatch, Fake(slow_convs={"fc2"}))
    assert not glob.glob(str(tmp_path / "fc2conv-tune-*"))


def test_a_pair_the_spread_leaves_undecided_is_measured_again_and_pooled():
    """A slow spell took most rounds of the output: 1.3x slower by the figures, but its spread hides it; measured
    again, its runs pooled with the first ones, it is decided (here: slower)."""
    from passes.fc_to_conv.tune import Tuner

    class Spells:
        name, noise, calls = "fake", 0.05, 0

        def measure(self, paths, rounds=5):
            self.calls += 1
            if self.calls == 1:   # the output: one fast round, the rest slow
                return [Cost(100.0, "us", [100.0, 101.0], statistic="min"),
                        Cost(130.0, "us", [130.0, 200.0], statistic="min")]
            return [Cost(100.0, "us", [100.0, 100.5], statistic="min"),
                    Cost(131.0, "us", [131.0, 131.5], statistic="min")]
    tuner = Tuner(Spells(), attempt=None)
    a, b = tuner.pair("a.onnx", "b.onnx")
    assert tuner.measurements == 2 and len(b.runs) == 4 and b.value == 130.0 and b.spread < 0.01


class Breaks(Fake):
    """A model does not load while a Conv made from a layer named in `breakers` is in it (an EP that aborts)."""

    def __init__(self, breakers):
        super().__init__()
        self.breakers = set(breakers)

    def _cost(self, path):
        nodes = onnx.load(path, load_external_data=False).graph.node
        if any(n.op_type == "Conv" and any(n.name.startswith(b + "_") for b in self.breakers) for n in nodes):
            return Cost(None, "cycles", error="the QNN EP ended the process (exit -6)")
        return super()._cost(path)


@pytest.mark.parametrize("breakers", [{"fc2"}, {"fc1", "fc3"}])
def test_an_output_that_does_not_load_has_its_breaking_layers_found_by_bisection(monkeypatch, breakers):
    """Issue 24: the converted swin_t made the QNN EP abort where the original ran. Only the layers that break it
    go back (each found by a binary search over the layers still converted); the others stay Convs."""
    fake = Breaks(breakers)
    _, report = _tuned(monkeypatch, fake)
    assert sorted(s.name for s in report.tuned) == sorted(breakers), report.text()
    assert all("does not load with it as a Conv (found by bisection" in s.reason for s in report.tuned)
    assert sorted(c.name for c in report.converted) == sorted({"fc1", "fc2", "fc3"} - breakers)
    assert report.tuning.tuned.value is not None


def test_the_cpu_toolchain_measures_at_the_given_shapes_and_threads():
    """--input-shape reaches the measuring child (a model timed at 2 x 64 rows, not at the verification's small
    fallback dims), --tune-threads its sessions; the feeds it makes have those dims."""
    from passes.fc_to_conv import toolchains
    from passes.fc_to_conv.toolchains.latency import feeds_for
    tc = toolchains.require("onnxruntime", 0, {"x": [64, 8]})
    assert (tc.threads, tc.shapes) == (0, {"x": [64, 8]})
    assert toolchains.require("onnxruntime").shapes == {}   # the registry's own stays unconfigured
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(three_layers(), path)
        assert feeds_for(path, {"x": [64, 8]})["x"].shape == (64, 8)
        [cost] = tc.measure([path], rounds=1, runs=2)
        assert cost.value and cost.value > 0 and cost.error is None, cost


def test_bad_tune_threads_is_one_line(tmp_path):
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(three_layers(), str(src))
    r = cli(src, out, "--tune", "--tune-threads", "-1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--tune-threads -1 / --tune-rounds 5: threads must be 0" in lines[0]
    assert not out.exists()


def two_blocks(second_width: int = 16) -> onnx.ModelProto:
    """x -> fc1 -> Relu -> fc2 -> + x -> fc3 -> Relu -> fc4 -> + : two regions (a residual Add ends each), alike
    when the second block's hidden width is the first's."""
    rng = np.random.default_rng(2)
    w = lambda k, n: (rng.standard_normal((k, n)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="fc2"), helper.make_node("Add", ["h2", "x"], ["s1"]),
             helper.make_node("MatMul", ["s1", "w3"], ["h3"], name="fc3"), helper.make_node("Relu", ["h3"], ["r3"]),
             helper.make_node("MatMul", ["r3", "w4"], ["h4"], name="fc4"), helper.make_node("Add", ["h4", "s1"], ["y"])]
    return make_model(nodes, [vi("x", ["b", 8])], [vi("y", ["b", 8])],
                      [init("w1", w(8, 16)), init("w2", w(16, 8)), init("w3", w(8, second_width)),
                       init("w4", w(second_width, 8))])


def test_regions_alike_are_decided_together(monkeypatch):
    """Both blocks slow as Convs: one measurement puts both regions back (then one per place in them), not one
    per region; the reason names the regions alike."""
    fake = Fake(slow_convs={"fc1", "fc2", "fc3", "fc4"})
    out, report = _tuned(monkeypatch, fake, two_blocks())
    assert sorted(s.name for s in report.tuned) == ["fc1", "fc2", "fc3", "fc4"] and not _convs(out), report.text()
    assert fake.calls == 5, fake.calls   # first pair, both regions as FC, each place in them, the last check
    assert "the model with its region and the 1 alike, 4 layers (fc1, fc2, fc3, ...) as FC" \
        in report.tuned[0].reason, report.tuned[0].reason


def test_regions_that_differ_are_decided_apart(monkeypatch):
    fake = Fake(slow_convs={"fc3", "fc4"})
    out, report = _tuned(monkeypatch, fake, two_blocks(second_width=32))
    assert sorted(s.name for s in report.tuned) == ["fc3", "fc4"] and len(report.converted) == 2, report.text()
    assert "its region of 2 layers (fc3, fc4) as FC" in report.tuned[0].reason, report.tuned[0].reason


def test_the_qnn_toolchain_measures_at_the_input_shapes_given(monkeypatch, tmp_path):
    """--input-shape reaches the emulator by the dims' names (HTP needs static shapes; the rest are fixed to 1)."""
    from passes.fc_to_conv.toolchains import qnn
    model = make_model([helper.make_node("MatMul", ["ids", "w"], ["y"])], [vi("ids", ["batch", "seq", 8])],
                       [vi("y", ["batch", "seq", 4])], [init("w", np.ones((8, 4), np.float32))])
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    seen = {}

    def fake(paths, fp16, dims, rounds):
        seen.update(dims=dims, fp16=fp16, rounds=rounds)
        return [{"cycles": 10.0, "cycles_per_session": [10.0], "error": None} for _ in paths]
    monkeypatch.setattr(qnn.qnn_htp, "measure", fake)
    (cost,) = qnn.TOOLCHAIN.configured(1, {"ids": [1, 16, 8]}).measure([path], rounds=3)
    assert seen == {"dims": {"batch": 1, "seq": 16}, "fp16": True, "rounds": 3} and cost.value == 10.0, seen
    qnn.TOOLCHAIN.configured(1, {}).measure([path], rounds=3)
    assert seen["dims"] is None   # every dynamic dim to 1, as qnn_htp does by default
    assert qnn.TOOLCHAIN.shapes == {}   # the registry's own stays unconfigured
