"""Campaigns on a real dask.distributed cluster (a LocalCluster of two worker
processes): the same findings as a serial run, even when a worker dies mid-run; an
engine the workers cannot load, and Dask missing, are one-line errors; ``--dask``
end to end; and ``--workers auto`` running a small campaign serially."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from verifier.campaign import check_engine  # noqa: E402
from verifier.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STUDENT = f"{ROOT / 'tests' / 'engines' / 'student.py'}:Value"  # two bugs: two findings
EXAMPLES, SEED = 300, 5  # three shards
ON_WORKER = "CROSSGRAD_TEST_ON_A_DASK_WORKER"  # set in the workers' environment only


def _key(result) -> list:
    return [(f.signature, f.expression, f.point, f.shrunk) for f in result.findings + result.warnings + result.oracle_findings]


@pytest.fixture(scope="module")
def cluster():
    import dask

    # A worker that dies fails its tasks at once (KilledWorker) instead of Dask
    # running them again elsewhere: the campaign itself must submit them again.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      env={ON_WORKER: "1"}) as local:
            yield local


@pytest.fixture(scope="module")
def serial():
    return check_engine(STUDENT, examples=EXAMPLES, seed=SEED, progress=False)


def test_a_dask_campaign_finds_exactly_what_a_serial_run_finds(cluster, serial) -> None:
    ticks = []
    result = check_engine(STUDENT, examples=EXAMPLES, seed=SEED, cluster=cluster,
                          progress=lambda done, total, phase: ticks.append((done, phase)))
    assert len(serial.findings) >= 2 and _key(result) == _key(serial)
    assert result.examples == serial.examples == EXAMPLES and result.counts == serial.counts
    assert result.occurrences == serial.occurrences and result.workers == 2
    assert [done for done, phase in ticks if phase == "checking"] == [100, 200, 300]  # a tick per shard


def test_a_worker_killed_mid_run_loses_no_finding(cluster, serial, tmp_path: Path) -> None:
    marker = tmp_path / "killed"

    class KillOnce(distributed.WorkerPlugin):  # local: shipped to the workers by value
        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and str(key).startswith("crossgrad-shard-1-") and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies as it starts shard 1

    with distributed.Client(cluster, set_as_default=False) as client:
        client.register_plugin(KillOnce(), name="kill-once")
        try:
            result = check_engine(STUDENT, examples=EXAMPLES, seed=SEED, cluster=client, progress=False)
        finally:
            client.unregister_worker_plugin("kill-once")
        assert marker.exists()  # a worker did die
        assert _key(result) == _key(serial) and result.examples == EXAMPLES and result.counts == serial.counts
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_an_engine_the_workers_cannot_load_is_one_line(cluster, tmp_path: Path, capsys) -> None:
    engine = tmp_path / "only_here.py"
    engine.write_text(f"import os\nif os.environ.get({ON_WORKER!r}):\n"
                      "    raise ImportError('no module named fancygrad')\nfrom engine import Value\n")
    with pytest.raises(ValueError) as error:
        check_engine(f"{engine}:Value", examples=50, cluster=cluster, ops="add,mul", progress=False)
    message = str(error.value)
    assert "\n" not in message and str(engine) in message and "Dask worker tcp://" in message, message
    assert "fancygrad" in message
    with pytest.raises(SystemExit) as code:
        main(["check", "--engine", f"{engine}:Value", "--examples", "50", "--ops", "add,mul", "--dask", cluster.scheduler_address])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("verifier: error: ") and "cannot be loaded on Dask worker" in err[0]


def test_without_dask_the_error_says_how_to_install_it(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    with pytest.raises(SystemExit) as code:
        main(["check", "--examples", "5", "--dask", "tcp://127.0.0.1:8786"])
    assert code.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'crossgrad[dask]'" in line, line
    with pytest.raises(ValueError, match=r"pip install 'crossgrad\[dask\]'"):
        check_engine("engine:Value", examples=5, ops="add,mul", cluster="tcp://127.0.0.1:8786", progress=False)


def test_the_cli_runs_on_a_dask_cluster(cluster, serial, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "verifier", "check", "--engine", STUDENT, "--examples", str(EXAMPLES),
                           "--seed", str(SEED), "--dask", cluster.scheduler_address, "--json", str(tmp_path / "f.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 1, done.stderr  # the student engine's bugs
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["workers"] == 2 and data["examples"] == EXAMPLES
    assert [(d["expression"], d["blame"]["op"]) for d in data["discrepancies"]] == \
           [(f.expression, f.blame.op) for f in serial.findings]
    both = main_exit(["check", "--workers", "2", "--dask", cluster.scheduler_address])
    assert both == 2


def main_exit(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as stop:
        return stop.code
    return 0


def test_ctrl_c_keeps_what_the_shards_found(cluster) -> None:
    def progress(done: int, total: int, phase: str) -> None:
        if phase == "checking" and done >= 100:
            signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist workers ignore SIGINT
    try:
        result = check_engine(STUDENT, examples=100_000, seed=SEED, cluster=cluster, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.stopped == "interrupted"
    assert 100 <= result.examples < 100_000 and result.findings  # the student engine's bugs, unshrunk


def test_a_small_campaign_runs_serially_by_default(tmp_path: Path, monkeypatch) -> None:
    from verifier import executors
    from verifier.executors import auto_workers

    def no_pool(*args, **kwargs):
        raise AssertionError("a small campaign started worker processes")

    monkeypatch.setattr(executors, "_parallel", no_pool)
    monkeypatch.setattr("verifier.campaign._parallel", no_pool)
    assert main_exit(["check", "--examples", "150", "--ops", "add,mul", "--json", str(tmp_path / "f.json")]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["workers"] == 1
    assert main_exit(["check", "--examples", "150", "--ops", "add,mul", "--workers", "auto"]) == 0
    assert auto_workers(250, cpus=8) == 1 and auto_workers(100_000, time_budget=20, cpus=8) == 1
    assert auto_workers(100_000, cpus=8) == 8 and auto_workers(100_000, cpus=1) == 1
    assert "auto" in main_help()


def main_help() -> str:
    import click.testing

    from verifier.cli import cli

    return " ".join(click.testing.CliRunner().invoke(cli, ["check", "--help"]).output.split())
