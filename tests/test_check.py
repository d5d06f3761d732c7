"""`codesign check`: the CI gate's exit codes and its explanation of what dominates."""
import json

from conftest import REPO, run_cli

MODEL = str(REPO / "examples" / "resnet50.onnx")


def _latency(target):
    return json.loads(run_cli("analyze", MODEL, "-t", target, "--json", "-", check_rc=0).stdout)["latency_ms"]


def test_within_and_over_budget(tmp_path):
    lat = _latency("raspberry-pi-4")
    ok = run_cli("check", MODEL, "-t", "raspberry-pi-4", "--max-latency-ms", str(lat * 1.01), check_rc=0)
    assert "PASS" in ok.stdout
    over = run_cli("check", MODEL, "-t", "raspberry-pi-4", "--max-latency-ms", str(lat * 0.99),
                   "--json", "-", check_rc=1)
    verdict = json.loads(over.stdout)
    assert verdict["pass"] is False and verdict["over_budget"] == ["latency_ms"]
    assert len(verdict["dominant_layers"]) == 5
    shares = [l["share_pct"] for l in verdict["dominant_layers"]]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0


def test_memory_budget_on_mcu():
    proc = run_cli("check", MODEL, "-t", "stm32h7", "--bits", "w8a8", "--max-peak-memory-kb", "1024", check_rc=1)
    assert "OVER" in proc.stdout and "peak memory" in proc.stdout


def test_bad_input_is_exit_2():
    proc = run_cli("check", MODEL, "-t", "host")
    assert proc.returncode == 2 and "give at least one budget" in proc.stderr
    proc = run_cli("check", MODEL, "-t", "host", "--max-latency-ms", "-5")
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
    proc = run_cli("check", "missing.onnx", "-t", "host", "--max-latency-ms", "5")
    assert proc.returncode == 2 and "not found" in proc.stderr
