"""tests/qnn_htp.py's reading of the QNN EP's detailed profile, on a CSV laid out as the emulator writes it (rows
copied from a session of models/quantized/vit_qdq_u8_pc.onnx, which runs in four QNN partitions). Needs no EP."""
import qnn_htp

HEADER = "Msg Timestamp,Message,Time,Unit of Measurement,Timing Source,Event Level,Event Identifier\n"
PARTITION = """0,BACKEND,6610,US,BACKEND,ROOT,Time for initial VTCM acquire
0,BACKEND,{total},CYCLES,BACKEND,ROOT,Accelerator (execute) time (cycles)
0,NODE,4908,CYCLES,BACKEND,SUB-EVENT,Input OpId_2 (cycles)
0,NODE,{a},CYCLES,BACKEND,SUB-EVENT,/layers.0/att/q/MatMul:OpId_61 (cycles)
0,NODE,{b},CYCLES,BACKEND,SUB-EVENT,/Concat_2:OpId_30 (cycles)
0,NODE,12689,CYCLES,BACKEND,SUB-EVENT,Output OpId_3 (cycles)
0,BACKEND,64519,US,BACKEND,ROOT,Accelerator (execute) time
0,EXECUTE,64665,US,BACKEND,ROOT,QNN (execute) time
"""
TOTALS = [47_049, 15_013_458, 14_479_282, 884_387]


def _profile(tmp_path):
    rows = "".join(PARTITION.format(total=t, a=100 * i, b=7) for i, t in enumerate(TOTALS))
    path = tmp_path / "qnn.csv"
    path.write_text(HEADER + "0,FINALIZE,20208,US,BACKEND,ROOT,QNN (finalize) time\n" + rows)
    return str(path)


def test_cycles_are_summed_over_partitions(tmp_path):
    total, nodes = qnn_htp.profile_cycles(_profile(tmp_path))
    assert total == sum(TOTALS) == 30_424_176     # not min(TOTALS), 47,049: a fragment of the model
    # per-op rows by QNN op name, summed over partitions; the partitions' Input/Output rows are not ops
    assert nodes == {"/layers.0/att/q/MatMul": 0 + 100 + 200 + 300, "/Concat_2": 28}


def test_no_profile_is_no_figure(tmp_path):
    assert qnn_htp.profile_cycles(str(tmp_path / "absent.csv")) == (None, {})


def _run(cycles, error=None):
    return {"error": error, "cpu_nodes": {}, "qnn_partitions": 1, "cycles": cycles, "node_cycles": {"n": cycles}}


def test_sessions_give_the_median_not_the_minimum():
    # the spread seen on the emulator: one low session among several higher ones
    runs = [_run(c) for c in (10_700_000, 8_800_000, 9_900_000, 10_100_000, 10_300_000)]
    r = qnn_htp.median_session(runs)
    assert r["cycles"] == 10_100_000 and r["node_cycles"] == {"n": 10_100_000}
    assert r["cycles_per_session"] == [10_700_000, 8_800_000, 9_900_000, 10_100_000, 10_300_000]
    assert qnn_htp.median_session([_run(4), _run(2)])["cycles"] == 2      # even count: one session's figures


def test_a_session_that_failed_makes_the_model_fail():
    r = qnn_htp.median_session([_run(5), _run(None, "graphAddNode() failed")])
    assert r["error"] == "graphAddNode() failed" and r["cycles_per_session"] == [5, None]
