"""benchmarks/gpu_check.py's summaries, tables and files, from a made-up report (no JAX, no
run), and train_speed's peak table."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import gpu_check  # after the path: benchmarks/ is not installed


def _row(structure, dtype="float32", conv="matmul", batch=16, images=1000.0, share=0.05,
         part="fp32"):
    return {"part": part, "structure": structure, "compute_dtype": dtype, "conv_impl": conv,
            "batch_size": batch, "compile_s": 21.5, "iteration_s": 64 / images,
            "images_per_s": images, "flops_per_s": 49.5e12, "share_of_peak": share,
            "peak_memory_bytes": 3 * 2 ** 30, "program_memory_bytes": 2 ** 30}


def fake_report() -> dict:
    rounds = [{"torch_e2d2": [0.10, 0.12, 0.11], "ours_e2d2": [0.05, 0.05, 0.06],
               "ours_e1d1": [0.04, 0.04, 0.04]},
              {"torch_e2d2": [0.12, 0.12, 0.12], "ours_e2d2": [0.06, 0.06, 0.06],
               "ours_e1d1": [0.03, 0.03, 0.03]}]
    sbs = {"rounds": rounds, "iterations": 3,
           "torch_ready": {"torch": "2.11.0", "device": "NVIDIA H100 80GB HBM3",
                           "cudnn_allow_tf32": True, "cudnn_benchmark": False},
           "ours_ready": {"conv_impl": {"e2d2": "matmul", "e1d1": "matmul"}},
           **gpu_check.summarize_side_by_side(rounds)}
    report = {
        "settings": {"tiny": False, "budget_s": 330, "batch_size": 16, "image_size": 128,
                     "recipe": {}},
        "dataset": "celebamask_synthetic/128_n2000_s0", "elapsed_s": 301.2,
        "parts": {"env": {"status": "ok", "wall_s": 12.0, "timeout_s": 45},
                  "fp32": {"status": "partial", "wall_s": 120.0, "timeout_s": 120,
                           "note": "a | pipe"},
                  "xla_bf16": {"status": "skipped", "note": "no budget left"}},
        "env": {"nvidia_smi": "NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04",
                "device_kind": "NVIDIA H100 80GB HBM3", "backend": "gpu", "platform": "gpu",
                "device_count": 1, "python": "3.12.3",
                "versions": {"jax": "0.11.2", "jaxlib": "0.11.2", "flax": "0.12.8"},
                "peak_tflops": 989.4, "peak_source": "datasheet",
                "matmul": {"n": 8192, "tflops_median": 791.5}, "import_errors": {}},
        "train_speed": [_row("e1d1", conv="xla", images=1200.0, part="xla_fp32"),
                        _row("e1d1", images=2000.0), _row("e2d2", images=1000.0),
                        _row("e1d1", dtype="bfloat16", share=None, part="bf16")],
        "not_run": [{"part": "fp32", "structure": "e2d1", "batch_size": 16,
                     "compute_dtype": "float32", "conv_impl": "auto", "reason": "time limit"}],
        "side_by_side": sbs,
        "main_job": {
            "build": {"dataset": "celebamask_synthetic/128_n2000_s0", "faces": 2000,
                      "build_s": 20.0, "faces_per_s": 100.0, "workers": 16, "cpu_count": 16,
                      "splits": {"train": 1600}, "tensorflow_imported": False},
            "train": {"rc": 0, "wall_s": 50.0, "num_train_steps": 200, "checkpoints": [100, 200],
                      "resumed_from": None, "timing": {"images_per_s": 1500.0}},
            "resume": {"rc": 0, "wall_s": 30.0, "num_train_steps": 300,
                       "checkpoints": [100, 200, 300], "resumed_from": 200,
                       "timing": {"images_per_s": 1600.0, "iterations_per_s_by_log": [1, 2]}}},
    }
    report["main_job_speed"] = gpu_check.main_job_speed(report)
    return report


def test_side_by_side_medians_and_ratios():
    s = gpu_check.summarize_side_by_side(fake_report()["side_by_side"]["rounds"])
    assert s["systems"]["torch_e2d2"]["round_medians_s"] == [0.11, 0.12]
    assert s["systems"]["torch_e2d2"]["median_s"] == pytest.approx(0.12)
    assert s["ratios"]["ours_e2d2"]["by_round"] == pytest.approx([0.11 / 0.05, 2.0])
    assert s["ratios"]["ours_e1d1"]["overall"] == pytest.approx(0.12 / 0.035)
    assert gpu_check.summarize_side_by_side([]) == {"systems": {}, "ratios": {}}


def test_main_job_speed_compares_with_the_matching_random_batch_row():
    speed = fake_report()["main_job_speed"]
    # The resumed run's timing.json; train_speed's E1D1 float32 of the fp32 part (auto's form,
    # as main.py's), not the other form's row before it.
    assert speed["images_per_s"] == 1600.0
    assert speed["random_batch_images_per_s"] == 2000.0
    assert speed["random_batch_conv_impl"] == "matmul"
    assert speed["ratio"] == pytest.approx(0.8)
    assert gpu_check.main_job_speed({"main_job": None}) is None


def test_tables_and_files(tmp_path):
    report = fake_report()
    tables = gpu_check.write_outputs(report, tmp_path)
    assert (tmp_path / "gpu_check.md").read_text() == tables
    assert json.loads((tmp_path / "gpu_check.json").read_text())["dataset"] == report["dataset"]
    lines = tables.splitlines()
    # The training-speed table comes last, with the rows not run at its end.
    assert lines[-1].startswith("| e2d1 | fp32 | auto | 16 | not run: time limit")
    assert "| e1d1 | fp32 | matmul | 16 | 21.5 | 0.0320 | 2000.0 | 49.50 | 5.0% | 3.00 | 1.00 |" \
        in lines
    assert "| e1d1 | bf16 | matmul | 16 | 21.5 | 0.0640 | 1000.0 | 49.50 | n/a | 3.00 | 1.00 |" \
        in lines
    assert "| fp32 | partial | 120 | 120 | a / pipe |" in lines  # a '|' in a note is escaped
    assert "| xla_bf16 | skipped | - | - | no budget left |" in lines
    assert any("791.5 TFLOP/s (80% of the datasheet peak)" in line for line in lines)
    assert any(line.startswith(
        "| ours E2D2 | 0.0500, 0.0600 | 0.0600 | 1066.7 | 2.00x (2.20, 2.00)") for line in lines)
    assert any("resumed from 200" in line and "[100, 200, 300]" in line for line in lines)
    assert any("1600.0 vs 2000.0 images/s" in line and "0.80x" in line for line in lines)
    # Every table row has as many cells as its header.
    header_cells = None
    for line in lines:
        if line.startswith("| ") and line.endswith(" |"):
            cells = line.count(" | ") + 1
            if header_cells is None:
                header_cells = cells
            elif line.startswith("| ---"):
                assert cells == header_cells, line
        else:
            header_cells = None


def test_settings():
    tiny, gpu = gpu_check.settings(True), gpu_check.settings(False)
    assert tiny.dataset_config == "64_n40_s0"
    assert gpu.dataset_config == "128_n2000_s0"
    assert gpu_check.settings(False, faces=10000).dataset_config == "128"  # the standard one
    assert set(gpu.caps) >= {"env", "fp32", "build", "train", "resume", "torch", "bf16",
                             "big_fp32", "big_bf16", "profile", "xla_fp32", "xla_bf16"}


def test_the_profile_parts_line_gives_the_traced_iterations_speed_against_the_peak():
    run = {"iteration_s": [0.30, 0.10, 0.20], "flops": 40e12, "structure": "e1d1",
           "batch_size": 256, "compute_dtype": "bfloat16", "conv_impl": "matmul"}
    speed = gpu_check.traced_speed(run, 800.0)
    assert speed == pytest.approx({"iteration_s_median": 0.2, "tflops": 200.0,
                                   "share_of_peak": 0.25})
    assert gpu_check.traced_speed(run, None)["share_of_peak"] is None  # a card not in the table
    note = gpu_check.profile_note({**run, **speed, "file_bytes": 3 * 2**20})
    assert note == ("e1d1 batch 256 bfloat16 matmul, traced: 200.0 ms an iteration, 200.0 "
                    "TFLOP/s, 25.0% of peak; profile.tar.gz 3.0 MiB")


def test_the_profile_part_packs_the_newest_trace_where_analyze_reads_it_and_nothing_untraced(
        tmp_path):
    import tarfile

    folder, target = tmp_path / "profile", tmp_path / "out" / "profile.tar.gz"
    target.parent.mkdir()
    (folder / "hlo").mkdir(parents=True)
    (folder / "run.json").write_text("{}")
    assert gpu_check.pack_profile(folder, target) is None and not target.exists()
    for stamp in ("2026_12_06_10_00_00", "2026_12_06_11_00_00"):
        (folder / "trace/plugins/profile" / stamp).mkdir(parents=True)
        (folder / "trace/plugins/profile" / stamp / "host.xplane.pb").write_bytes(b"x")
    (folder / "hlo/module_0002.jit_train_iteration.sm_9.0_gpu_after_optimizations.txt"
     ).write_text("HloModule")
    (folder / "hlo/module_0002.jit_train_iteration.before_optimizations.txt").write_text("")
    size = gpu_check.pack_profile(folder, target)
    assert size == target.stat().st_size > 0
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == [
            "hlo/module_0002.jit_train_iteration.sm_9.0_gpu_after_optimizations.txt",
            "run.json", "trace/plugins/profile/2026_12_06_11_00_00/host.xplane.pb"]
    gpu_check.pack_profile(folder, target, max_bytes=1)  # too large with the HLO: without it
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == [
            "run.json", "trace/plugins/profile/2026_12_06_11_00_00/host.xplane.pb"]


def test_light_imports_and_peak_table():
    """gpu_check imports no JAX (the driver only starts children); train_speed's peak table by
    device kind, in a child process (its absl flags stay out of this one)."""
    code = ("import sys; from benchmarks import gpu_check; assert 'jax' not in sys.modules\n"
            "from benchmarks.train_speed import peak_tflops\n"
            "assert peak_tflops('NVIDIA H100 80GB HBM3')[0] == 989.4\n"
            "assert peak_tflops('NVIDIA H200')[0] == 989.4\n"
            "assert peak_tflops('NVIDIA H200 NVL')[0] is None\n"  # another part's peak
            "assert peak_tflops('cpu')[0] is None\n"
            "assert peak_tflops('cpu', 100.0) == (100.0, '--peak_tflops')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_flops_are_counted_on_the_lowered_program_convolutions_included_on_any_backend():
    """train_speed's FLOP count is the lowered program's: a 3x3 convolution's 2*N*H*W*Cin*Cout*9
    over its output (VALID: XLA counts only the taps inside the input); a GPU's compiled count
    leaves cuDNN's convolutions out, and JAX 0.11's CUDA plugin gives no count before compiling:
    there the CPU backend counts the same lowered program, with the same result. In a child,
    for train_speed's absl flags."""
    code = ("import jax, jax.numpy as jnp\n"
            "from benchmarks.train_speed import cpu_flops, lowered_flops\n"
            "conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID',"
            " dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
            "x, w = jnp.zeros((2, 16, 16, 8)), jnp.zeros((3, 3, 8, 32))\n"
            "lowered = jax.jit(conv).lower(x, w)\n"
            "flops = lowered_flops(lowered)\n"
            "expected = 2 * 2 * 14 * 14 * 8 * 32 * 9\n"
            "assert abs(flops - expected) <= 0.01 * expected, (flops, expected)\n"
            # What a GPU run (a PJRT plugin: no count before compiling) falls back to.
            "assert cpu_flops(lowered) == flops, (cpu_flops(lowered), flops)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_step_pieces_derives_the_d_step_the_g_step_and_the_penalty_from_whole_iterations():
    from benchmarks import step_pieces

    results = {("ours", "g_forward"): [1.0, 1.2, 1.1], ("ours", "iteration_1"): [12.0],
               ("ours", "iteration_3"): [16.0], ("ours", "no_gp_3"): [15.4],
               ("reference", "g_forward"): [1.0], ("reference", "iteration_1"): [9.0],
               ("reference", "iteration_3"): [11.0], ("reference", "no_gp_3"): [10.7]}
    rows = dict(step_pieces.summarize(results, ["ours", "reference"]))
    assert rows["g_forward"]["ours"] == pytest.approx(1.1)  # the median
    assert rows["d_step"] == pytest.approx({"ours": 2.0, "reference": 1.0})
    assert rows["g_step"] == pytest.approx({"ours": 10.0, "reference": 8.0})
    assert rows["gp_per_d_step"] == pytest.approx({"ours": 0.2, "reference": 0.1})
    table = step_pieces.format_table(list(rows.items()), ["ours", "reference"])
    assert "| g_step | 10.000 | 8.000 | 1.25x |" in table


def test_profile_step_sets_a_recipes_fields_as_their_own_types():
    from benchmarks import profile_step
    from configs import quickstart

    config = quickstart.get_config()
    profile_step.override(config, ["d_width=32", "d_spectral_norm=True", "learning_rate=5e-4"])
    assert (config.d_width, config.d_spectral_norm, config.learning_rate) == (32, True, 5e-4)
    profile_step.override(config, ["d_spectral_norm=False"])
    assert config.d_spectral_norm is False
    with pytest.raises(ValueError, match="no field 'd_wdith'"):
        profile_step.override(config, ["d_wdith=32"])
    with pytest.raises(ValueError, match="d_spectral_norm is True or False"):
        profile_step.override(config, ["d_spectral_norm=true"])


def test_profile_step_names_a_fusion_by_its_own_op_name_or_else_its_body_s(tmp_path):
    from benchmarks import profile_step

    (tmp_path / "hlo").mkdir()
    (tmp_path / "hlo" / "module_0002.jit_train_iteration.cpu_after_optimizations.txt").write_text(
        "%fused_computation.7 (param_0: f32[8,4]) -> f32[4,4] {\n"
        "  %param_0 = f32[8,4]{1,0} parameter(0)\n"
        '  ROOT %dot.1 = f32[4,4]{1,0} dot(%param_0, %param_0), metadata={op_name="jit(train'
        '_iteration)/transpose(jvp(Generator))/F/decoder/UpConv_2/dot_general"}\n'
        "}\n\n"
        "ENTRY %main.9 (p: f32[8,4]) -> f32[4,4] {\n"
        "  %ynn_fusion.7 = f32[4,4]{1,0} fusion(%p), kind=kCustom, calls=%fused_computation.7\n"
        '  ROOT %copy.3 = f32[4,4]{1,0} copy(%ynn_fusion.7), metadata={op_name="jit(train_itera'
        'tion)/jvp(Generator)/F/copy"}\n'
        "}\n")
    sources = profile_step._hlo_sources(str(tmp_path))
    assert sources["ynn_fusion.7"] == (
        "f32[4,4]{1,0}", "jit(train_iteration)/transpose(jvp(Generator))/F/decoder/UpConv_2/"
        "dot_general")
    assert sources["copy.3"][1].endswith("jvp(Generator)/F/copy")


def test_profile_steps_cpu_split_counts_each_sample_once_by_where_it_ran():
    from benchmarks import profile_step

    report = (
        "# Samples: 32K of event 'cpu-clock:ppp'\n"
        "# Event count (approx.): 64000000000\n#\n"
        "# Overhead  Shared Object         Symbol\n#\n"
        "    25.31%  libjax_common.so      [.] ynn::dot_fp32_5x64x1_1x16x1_avx512\n"
        "    10.00%  libjax_common.so      [.] ynn::sum_kn_fp32_avx512\n"
        "     2.55%  libjax_common.so      [.] Eigen::internal::gemm_pack_colmajor_block<float,"
        " long, Eigen::internal::TensorContractionSubMapper<float>>::operator()\n"
        "    20.00%  [JIT] tid 2677        [.] 0x00007f048586119b\n"
        "     2.05%  libc.so.6             [.] __memmove_avx512_unaligned_erms\n"
        "     0.20%  libc.so.6             [.] qsort\n"
        "     0.21%  libmimalloc.so        [.] mi_malloc\n"
        "     0.31%  [kernel.kallsyms]     [k] clear_page_erms\n"
        "     0.61%  libpython3.11.so.1.0  [.] _PyEval_EvalFrameDefault\n")
    shares, symbols, cpu_s = profile_step.cpu_split(report)
    assert shares == pytest.approx({
        "YNNPACK's matrix kernels": 25.31, "YNNPACK's other kernels": 10.0,
        "Eigen's products and convolutions": 2.55, "XLA's compiled fusions": 20.0,
        "libc's copies and fills": 2.05, "allocator": 0.21, "the kernel": 0.31,
        "Python": 0.61, "other": 0.20})
    assert cpu_s == 64.0
    assert len(symbols) == 9
    assert symbols[0] == (25.31, "libjax_common.so [.] ynn::dot_fp32_5x64x1_1x16x1_avx512")


def test_profile_step_splits_a_gpu_traces_device_time_by_operation_and_category():
    from benchmarks import profile_step

    cols = ["rank", "program_id", "category", "hlo_op_name", "tf_op_name", "occurrences",
            "total_self_time", "model_flop_rate", "bound_by"]
    table = {"cols": [{"id": c, "label": c.title(), "type": "string"} for c in cols],
             "rows": [{"c": [{"v": v} for v in row]} for row in (
                 [2, "1", "fusion", "loop_fusion.3", "jit(train_iteration)/F/relu", 4, 1000.0,
                  50.0, "HBM"],
                 [1, "1", "convolution", "cudnn-conv.7", "jit(train_iteration)/transpose(jvp("
                  "Generator))/F/decoder/Conv_0/conv_general_dilated", 2, 6000.0, 400000.0,
                  "Compute"],
                 [3, "1", "fusion", "input_fusion.1", "", 2, 3000.0, None, None])]}
    rows = profile_step.hlo_stats_rows(table)
    assert rows[1]["hlo_op_name"] == "cudnn-conv.7" and rows[2]["model_flop_rate"] is None
    ops, categories, busy_ms = profile_step.device_split(rows, iterations=2)
    assert [op["hlo_op_name"] for op in ops] == ["cudnn-conv.7", "input_fusion.1",
                                                  "loop_fusion.3"]
    assert [op["ms"] for op in ops] == pytest.approx([3.0, 1.5, 0.5])  # own time / iterations
    assert categories == pytest.approx({"convolution": 3.0, "fusion": 2.0})
    assert list(categories) == ["convolution", "fusion"]  # largest first
    assert busy_ms == pytest.approx(5.0)
    assert profile_step.hlo_stats_rows({"cols": table["cols"]}) == []  # a CPU trace: no rows


def test_profile_step_reads_a_gpu_trace_by_device_time_and_a_cpu_trace_by_thread(
        tmp_path, monkeypatch, capsys):
    from benchmarks import profile_step

    calls = []
    monkeypatch.setattr(profile_step, "analyze_device",
                        lambda out, top, run: calls.append(("device", run["platform"])))
    monkeypatch.setattr(profile_step, "_trace_events", lambda out: calls.append("threads") or [])
    monkeypatch.setattr(profile_step, "_hlo_sources", lambda out: {})
    (tmp_path / "run.json").write_text(json.dumps({"platform": "gpu", "iteration_s": [0.1]}))
    profile_step.analyze(str(tmp_path), 5)
    (tmp_path / "run.json").write_text(json.dumps({"platform": "cpu", "iteration_s": [0.1]}))
    profile_step.analyze(str(tmp_path), 5)
    (tmp_path / "run.json").unlink()  # a trace recorded before run.json existed: a CPU's
    profile_step.analyze(str(tmp_path), 5)
    assert calls == [("device", "gpu"), "threads", "threads"]


def test_profile_step_times_a_pool_operation_from_its_launch_to_its_end_event():
    from benchmarks import profile_step

    def event(name, ts, dur, tid=1):
        return {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": ts, "dur": dur}

    events = [{"name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "tf_XLAEigen/1"}},
              {"name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "tf_XLAEigen/2"}},
              {"name": "thread_name", "pid": 1, "tid": 3, "args": {"name": "python"}},
              event("convolution.5", 0, 100),  # launched; the pool works until its end event
              event("end: convolution.5", 50_000, 1, tid=2),
              event("multiply_fusion.1", 60_000, 10_000),
              event("end: multiply_fusion.1", 70_000, 1),
              event("convolution.5", 80_000, 100),  # the next iteration's, with its own end
              event("end: convolution.5", 99_999, 1, tid=2),
              event("ThreadpoolListener::Region", 0, 100_000),
              event("ThreadpoolListener::Region", 0, 50_000, tid=2),
              event("dot.1", 0, 100_000, tid=3)]  # not an XLA thread
    times, busy = profile_step.op_times(events, iterations=2)
    assert times["convolution.5"] == pytest.approx((50_001 + 20_000) / 2)
    assert times["multiply_fusion.1"] == pytest.approx(10_001 / 2)
    assert "dot.1" not in times
    assert busy == pytest.approx({"tf_XLAEigen/1": 1.0, "tf_XLAEigen/2": 0.5})


def test_the_truth_closes_the_whole_gap_and_a_median_or_random_guess_part_of_the_opening_gap(
        tmp_path):
    from benchmarks import truth_ceiling

    rows = [truth_ceiling.editors(k, 32, 0, str(tmp_path)) for k in (2, 12, 22, 32, 42, 52)]
    assert {r["opening"] for r in rows} == {True, False}  # both directions present
    for opening in (True, False):
        assert truth_ceiling.gap_closed(rows, "truth", opening) == pytest.approx(1.0)
    for name in ("median draws", "random draws"):
        guess = truth_ceiling.gap_closed(rows, name, True)
        assert 0.3 < guess < 1.0  # the mouth's size is guessed, not known
        assert truth_ceiling.gap_closed(rows, name, False) == pytest.approx(1.0)
    # The error of an editor that does nothing lies where input and truth differ: all of it
    # in the opened mouth's cavity and lips, none far from the mouth.
    for r in rows:
        r["nothing"] = r["input"]
    shares = truth_ceiling.error_by_part(rows, "nothing", True)
    assert sum(e for e, _ in shares.values()) == pytest.approx(1.0)
    assert all(e == pytest.approx(g) for e, g in shares.values())  # its error is the gap
    assert shares["mouth"][0] > 0.3


def test_the_mask_split_puts_a_do_nothing_editors_error_where_input_and_truth_differ_on_its_mask(
        tmp_path, capsys):
    import numpy as np

    from benchmarks import truth_ceiling

    rows = [truth_ceiling.editors(k, 32, 0, str(tmp_path)) for k in (2, 12, 22, 32, 42, 52)]
    splits = {}
    for b in (0.0, 1.0):  # the mask off everywhere, then on everywhere
        for r in rows:
            r["nothing"], r["nothing mask"] = r["input"], np.full((32, 32), b, np.float32)
        splits[b] = truth_ceiling.error_by_mask(rows, "nothing", True)
        on, off, outside = (splits[b][k] for k in truth_ceiling.MASK_SPLIT)
        assert on + off + outside == pytest.approx(1.0)
        assert splits[b]["mean b in the region"] == b
        assert splits[b]["region with b <= 0.5"] == 1.0 - b
    # Its error is the gap: nearly all of it where input and truth differ (JPEG noise aside),
    # on the side of the mask's value.
    assert splits[0.0]["region, b > 0.5"] == 0.0 and splits[0.0]["region, b <= 0.5"] > 0.9
    assert splits[1.0]["region, b > 0.5"] == pytest.approx(splits[0.0]["region, b <= 0.5"])
    truth_ceiling.print_mask_split(rows, "nothing")
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| opening")]
    assert [c.strip() for c in lines[0].split("|")[2:4]] == ["1.000", "0.0%"]


def test_the_split_by_an_attribute_scores_the_faces_with_it_and_those_without_apart(
        tmp_path, capsys):
    from benchmarks import truth_ceiling

    rows = [truth_ceiling.editors(k, 32, 0, str(tmp_path)) for k in (2, 12, 22, 32, 42, 52)]
    men = [r for r in rows if r["attributes"]["Male"]]
    assert 0 < len(men) < len(rows)
    for r in rows:  # an editor that is perfect on the men and does nothing to the others
        r["half"] = r["truth"] if r["attributes"]["Male"] else r["input"]
    truth_ceiling.print_split(rows, ("half",), "Male")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| half")]
    with_, without = ([c.strip() for c in line.split("|")[2:-1]] for line in lines)
    opened = sum(r["opening"] for r in men)
    assert with_[0] == f"{opened} / {len(men) - opened}"
    assert set(with_[1:]) <= {"100.0%", "-"} and "100.0%" in with_
    assert set(without[1:]) <= {"0.0%", "-"} and "0.0%" in without


def test_a_mouth_opened_on_the_grid_fits_back_to_its_own_opening_and_a_closed_one_to_the_narrowest(
        tmp_path, capsys):
    import numpy as np

    from benchmarks import truth_ceiling

    rows = [truth_ceiling.editors(k, 32, 0, str(tmp_path)) for k in (2, 12, 22, 32, 42, 52)]
    opened = [r for r in rows if r["opening"]]
    grid, region = truth_ceiling.opening_grid(opened[0]["index"], 32, 0, str(tmp_path))
    assert not np.array_equal(grid[0], grid[-1]) and 0 < region.sum() < region.size / 4
    for draw, image in zip(truth_ceiling.OPENINGS, grid):
        fit = truth_ceiling.fitted_opening(image, grid, region)
        # Itself, or a narrower draw that the chin caps to the same picture.
        assert fit <= draw
        assert np.array_equal(grid[truth_ceiling.OPENINGS.index(fit)], image)
    assert truth_ceiling.fitted_opening(opened[0]["input"], grid, region) == 0.0
    for r in rows:  # an editor that leaves every mouth closed
        r["shut"] = r["input"]
    truth_ceiling.print_openings(rows, ("shut",), 32, 0)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| shut"))
    assert [c.strip() for c in line.split("|")[2:-1]] == ["0.000", "100.0%"]


def test_step_pieces_times_gs_layers_and_each_step_alone_and_names_an_unknown_piece():
    import argparse

    from benchmarks import step_pieces
    assert step_pieces.parse_pieces("g_forward,layers") == ["g_forward", *step_pieces.LAYERS]
    with pytest.raises(SystemExit, match="layer_nope"):
        step_pieces.parse_pieces("g_forward,layer_nope")
    args = argparse.Namespace(batch_size=1, image_size=64, repeats=2, structure="e1d1")
    for piece in (*step_pieces.LAYERS, "d_only_3", "g_only"):
        times = step_pieces._ours(piece, args)
        assert len(times) == 2 and min(times) > 0, piece
    # Layers alone: their medians, and no derived rows (those need the whole iterations).
    rows = step_pieces.summarize({("ours", "layer_res"): [0.2, 0.4, 0.3]}, ["ours"])
    assert rows == [("layer_res", {"ours": 0.3})]


def test_layer_speed_names_a_malformed_shape_and_times_every_form_it_is_given():
    from benchmarks import layer_speed
    assert layer_speed.parse_shape("2x8x3x5") == (2, 8, 3, 5)
    for bad in ("2x8x3", "2x7x3x5", "2xax3x5"):
        with pytest.raises(ValueError, match=bad):
            layer_speed.parse_shape(bad)
    ms = layer_speed.time_forms((2, 8, 3, 5), ["patches", "shifted", "xla"], rounds=1, repeats=1)
    assert set(ms) == {"patches", "shifted", "xla"} and all(t > 0 for t in ms.values())


def test_a_timed_layer_call_runs_the_forward_pass_and_both_gradients():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import layer_speed
    shape = (2, 8, 3, 5)
    x, kernel, weights = layer_speed.layer_inputs(shape)
    loss, (dx, dk) = layer_speed.layer_call(layer_speed.FORMS["shifted"], shape)()
    y = layer_speed.FORMS["xla"](x, kernel)
    assert loss == pytest.approx(float(jnp.sum(y * weights)), rel=1e-5)
    _, pullback = jax.vjp(layer_speed.FORMS["xla"], x, kernel)
    for got, want in zip((dx, dk), pullback(weights)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_the_7x7_layers_even_form_is_laxs_convolution_and_forward_only_returns_the_output():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import layer_speed
    shape = (2, 8, 3, 5)  # odd on both sides: the even form pads both
    x, kernel, weights = layer_speed.layer_inputs(shape, "conv7")
    assert kernel.shape == (7, 7, 3, 5) and weights.shape == (2, 8, 8, 5)
    even = layer_speed.LAYERS["conv7"][0]["even"]
    loss, (dx, dk) = layer_speed.layer_call(even, shape, "conv7")()
    y = layer_speed.conv7_by_lax(x, kernel)
    assert loss == pytest.approx(float(jnp.sum(y * weights)), rel=1e-5)
    _, pullback = jax.vjp(layer_speed.conv7_by_lax, x, kernel)
    for got, want in zip((dx, dk), pullback(weights)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    out = layer_speed.layer_call(even, shape, "conv7", forward_only=True)()
    np.testing.assert_allclose(out, y, atol=1e-5)


ZEN1 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx fma avx2 sha_ni

processor\t: 1
model name\t: another CPU
"""


def test_the_machine_line_names_the_cpus_family_and_its_widest_vector_extension():
    from benchmarks import machine

    zen1 = machine.parse_cpuinfo(ZEN1)
    assert (zen1["cpu"], zen1["cpu_family"], zen1["cpu_model"], zen1["vector"]) == \
        ("AMD EPYC", "23", "1", "avx2")  # the first processor's block, not the second's
    assert machine.cpu_line(zen1) == "AMD EPYC (family 23 model 1, avx2)"
    wide = machine.parse_cpuinfo(ZEN1.replace("avx2 sha_ni", "avx2 avx512f avx512bw"))
    assert wide["vector"] == "avx512f"
    arm = machine.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd evtstrm\n")
    assert arm["vector"] == "asimd" and arm["cpu_family"] is None
    assert machine.cpu_line({**arm, "cpu": "Neoverse"}) == "Neoverse (asimd)"
    info = machine.describe()  # this machine's, whatever it is
    assert info["cpu"] and info["cpu_count"] >= 1 and "jax" in info


def test_the_cpu_side_by_side_sets_each_of_ours_against_each_reference(capsys, tmp_path):
    from benchmarks import side_by_side

    def run(times, malloc="mimalloc"):
        return {"iteration_s": sorted(times)[len(times) // 2], "iteration_times_s": times,
                "threads": 2, "device": "cpu", "device_name": "AMD EPYC", "malloc": malloc}

    runs = {"torch": [run([12.0, 12.0]), run([14.0, 14.0])],
            "torch+mimalloc": [run([10.0, 10.0]), run([11.0, 11.0])],
            "e2d2": [run([10.0, 10.0]), run([14.0, 14.0])],
            "e2d2+system": [run([12.0, 12.0], "system"), run([16.0, 16.0], "system")]}
    args = side_by_side._parse_args(["--rounds", "2", "--structures", "e2d2",
                                     "--torch_malloc", "system,mimalloc",
                                     "--ours_malloc", "mimalloc,system"])
    info = {"cpu_count": 2, "cpus_usable": 2, "memory_gib": 23.5, "jax": "0.10.2",
            "torch": "2.13.0", "python": "3.11.7", "cpu": "AMD EPYC", "vector": "avx2"}
    summary = side_by_side._summarize(args, runs, info, tmp_path)
    ratios = summary["ratios"]
    assert set(ratios) == {"torch", "torch+mimalloc"}
    assert ratios["torch"]["e2d2"]["by_round"] == pytest.approx([1.2, 1.0])
    assert ratios["torch"]["e2d2+system"]["overall"] == pytest.approx(13.0 / 14.0)
    assert ratios["torch+mimalloc"]["e2d2"]["overall"] == pytest.approx(10.5 / 12.0)
    side_by_side._print_summary(args, summary)
    out = capsys.readouterr().out
    assert "malloc: mimalloc" in out and "| ours E2D2 (glibc malloc) | 12.00 | 16.00 |" in out
    assert "| E2D2 (glibc malloc) | 0.93x | 1.00x, 0.88x |" in out


def test_the_side_by_side_runs_ours_on_each_allocator_asked_for_and_refuses_others():
    from benchmarks import side_by_side

    ours = side_by_side.ours_environments({"PATH": "/bin"}, ["e2d2", "e1d1"],
                                          ["mimalloc", "system"])
    assert list(ours) == ["e2d2", "e1d1", "e2d2+system", "e1d1+system"]
    one = "--xla_force_host_platform_device_count=1"
    assert ours["e1d1+system"] == ("e1d1", {"PATH": "/bin", "MSAGAN_ALLOCATOR": "system",
                                            "XLA_FLAGS": one})
    assert ours["e2d2"][1]["MSAGAN_ALLOCATOR"] == "mimalloc"
    with pytest.raises(SystemExit, match="--ours_malloc: 'jemalloc'"):
        side_by_side.ours_environments({}, ["e2d2"], ["jemalloc"])
    with pytest.raises(SystemExit, match="--torch_malloc: 'jemalloc'"):
        side_by_side.torch_environments({}, ["jemalloc"])
    assert side_by_side.torch_environments({"A": "1"}, ["system"]) == {"torch": {"A": "1"}}


def test_the_side_by_side_runs_ours_on_each_device_count_asked_for_beside_its_other_flags():
    from benchmarks import side_by_side

    ours = side_by_side.ours_environments({"XLA_FLAGS": "--xla_cpu_foo=1"}, ["e2d2", "e1d1"],
                                          ["mimalloc", "system"], [1, 2])
    # Each structure on one device, then on two, next to each other in a round.
    assert list(ours)[:4] == ["e2d2", "e2d2@2", "e1d1", "e1d1@2"]
    assert ours["e1d1+system@2"][1]["XLA_FLAGS"] == (
        "--xla_cpu_foo=1 --xla_force_host_platform_device_count=2")
    assert side_by_side.ours_label("e1d1+system@2") == "E1D1 (glibc malloc, 2 devices)"
    assert side_by_side.ours_label("e2d2@2") == "E2D2 (2 devices)"
    assert side_by_side.ours_label("e2d2") == "E2D2"
    assert side_by_side.device_counts("1, 2") == [1, 2]
    for bad in ("two", "0", ""):
        with pytest.raises(SystemExit, match="--ours_devices: "):
            side_by_side.device_counts(bad)
    # A count set by the caller's XLA_FLAGS would be silently overridden: refused instead.
    with pytest.raises(SystemExit, match="give our device counts with --ours_devices"):
        side_by_side.ours_environments(
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, ["e2d2"], ["mimalloc"])


def test_the_condition_table_scores_each_c_as_the_evaluation_does_and_means_over_runs(
        trained_run):
    from benchmarks import edit_condition
    from msagan_jax import editor, evaluate

    run = str(trained_run)
    lines = edit_condition.table([run, run], [0.0], [1.0, 2.0], "test")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert [(r[0], r[2]) for r in rows] == [(run, "1"), (run, "1"), ("mean", "1"),
                                           (run, "2"), (run, "2"), ("mean", "2")]
    ed = editor.load_editor(trained_run)
    paper = evaluate.evaluate(ed, split="test")
    assert rows[0][3:5] == [f"{100 * paper[k]:.1f}%" for k in ("gap_closed_to_1",
                                                                 "gap_closed_to_0")]
    assert rows[2] == ["mean"] + rows[0][1:]  # one run twice: the mean is that run
    assert rows[3][4] == rows[0][4]  # the faces closed read only the c toward 0
    # A split without true counterparts (the real faces', here the train split) has no gaps.
    train = edit_condition.table([run], [0.0], [1.0], "train")[2].split("|")[1:-1]
    assert [c.strip() for c in train[3:5]] == ["n/a", "n/a"]
    assert train[5].strip().endswith("%") and train[7].strip().startswith("0.")
