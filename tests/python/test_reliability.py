"""Fault injection on the command-line tool (issue #9, item 3; docs/reliability.md).

Every output is written to a temporary file beside the target and renamed over it only
when complete, so whatever goes wrong - the run is killed, the folder is not writable, the
disk fills up - the previous output stays byte for byte, no temporary is left behind
(except after SIGKILL, which nothing can clean up), and the tool exits with a documented
code and a message naming the file:

  0 success; 1 runtime failure (cannot write, input changed during the run);
  2 invalid input (also a corrupt or truncated HDF5 input).

How the faults are made without special privileges:
  * killed while writing: SIGKILL at spread-out moments of real runs (and, for the
    forecast, the QINGSHUI_FORECAST_TEST_PAUSE_S hook in tests/python/test_forecast.py);
  * unwritable folder: a mode-0555 folder, with the tool run as user 'nobody' when the
    tests run as root (root ignores the mode); also a "folder" that is a regular file;
  * full disk: RLIMIT_FSIZE (ulimit -f) with SIGXFSZ ignored, so a write past the limit
    fails with EFBIG exactly as on a full file system (a tiny tmpfs would need mount
    rights); /dev/full for standard output;
  * corrupt HDF5: a valid observations file truncated, emptied, or with garbage after
    the HDF5 signature;
  * network file changed during a run: appended to while `qingshui forecast` runs.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import qingshui as qs

from test_forecast import short_inputs

ROOT = Path(__file__).resolve().parents[2]
APP1 = ROOT / "tests" / "regression" / "otis" / "app1"
PREVIOUS = b"previous output: must survive\n"


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ----- killed while writing -------------------------------------------------------------

def test_otis_killed_at_any_moment_leaves_the_previous_or_the_complete_output(cli, tmp_path):
    reference = tmp_path / "reference"
    r = subprocess.run([str(cli), "otis", str(APP1), "--out-dir", str(reference)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    complete = (reference / "cl.out").read_bytes()
    t0 = time.monotonic()
    subprocess.run([str(cli), "otis", str(APP1), "--out-dir", str(tmp_path / "timing")],
                   capture_output=True, timeout=120)
    duration = time.monotonic() - t0
    seen = set()
    for k in range(12):  # kill moments spread over the whole run, past its end
        out = tmp_path / f"run{k}"
        out.mkdir()
        (out / "cl.out").write_bytes(PREVIOUS)
        proc = subprocess.Popen([str(cli), "otis", str(APP1), "--out-dir", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * k / 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = (out / "cl.out").read_bytes()
        assert got in (PREVIOUS, complete), f"kill at {k / 10:.1f} of the run: torn cl.out"
        seen.add("previous" if got == PREVIOUS else "complete")
    assert "previous" in seen  # the early kills did interrupt runs


def test_hydro_killed_at_any_moment_leaves_the_previous_or_a_readable_file(cli, tmp_path):
    cmd = [str(cli), "hydro", "--date", "2024-04-15", "--out"]
    t0 = time.monotonic()
    r = subprocess.run(cmd + [str(tmp_path / "reference.h5")], capture_output=True, timeout=120)
    duration = time.monotonic() - t0
    assert r.returncode == 0
    for k in range(10):
        out = tmp_path / f"day{k}.h5"
        out.write_bytes(PREVIOUS)
        proc = subprocess.Popen(cmd + [str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(duration * k / 8)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.read_bytes() != PREVIOUS:
            with h5py.File(out, "r") as f:
                assert f.attrs["filetype"] == b"qingshui-hydraulics" or \
                    f.attrs["filetype"] == "qingshui-hydraulics"
                assert len(f["segments"].keys()) > 0


# ----- unwritable output folder ---------------------------------------------------------

def as_unprivileged():
    """preexec_fn running the child as 'nobody' when we are root (root ignores modes)."""
    if os.geteuid() != 0:
        return None

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return drop


@pytest.fixture
def readonly_dir():
    # Not under pytest's tmp_path: its parents are private to root, so 'nobody' could not
    # even reach the folder to be refused by it.
    where = Path(tempfile.mkdtemp(prefix="qingshui-ro-"))
    os.chmod(where, 0o755)
    folder = where / "out"
    folder.mkdir()
    (folder / "cl.out").write_bytes(PREVIOUS)
    (folder / "day.h5").write_bytes(PREVIOUS)
    (folder / "obs.csv").write_bytes(PREVIOUS)
    (folder / "forecast.h5").write_bytes(PREVIOUS)
    os.chmod(folder, 0o555)
    yield folder
    os.chmod(folder, 0o755)
    shutil.rmtree(where)


def forecast_inputs(tmp: Path) -> Path:
    """A short forecast's inputs, readable by 'nobody'."""
    inputs = short_inputs(ROOT, tmp / "inputs", str(ROOT / "data" / "yuncheng" / "demo" / "observations.csv"))
    os.chmod(inputs, 0o755)
    os.chmod(inputs / "forecast.yaml", 0o644)
    return inputs


def check_refused(r, folder: Path, name: str):
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"cannot write {folder / name}" in r.stderr or \
        f"cannot create {folder / name}" in r.stderr, r.stderr
    assert (folder / name).read_bytes() == PREVIOUS
    assert leftovers(folder) == []


def test_unwritable_folder_is_a_clear_error_and_keeps_the_previous_files(cli, readonly_dir):
    folder = readonly_dir
    run = lambda *a: subprocess.run([str(cli), *map(str, a)], capture_output=True, text=True,
                                    timeout=300, preexec_fn=as_unprivileged())
    check_refused(run("otis", APP1, "--out-dir", folder), folder, "cl.out")
    check_refused(run("hydro", "--date", "2024-04-15", "--out", folder / "day.h5"), folder, "day.h5")
    check_refused(run("simulate", "--scenario", ROOT / "data" / "tracing" / "examples" / "drill.yaml",
                      "--observations-out", folder / "obs.csv"), folder, "obs.csv")
    inputs = forecast_inputs(folder.parent)
    r = run("forecast", "--inputs", inputs, "--days", "1", "--members", "4", "--threads", "1",
            "--out", folder / "forecast.h5")
    assert r.returncode == 1, r.stderr
    assert "cannot create " + str(folder / "forecast.h5") in r.stderr, r.stderr
    assert (folder / "forecast.h5").read_bytes() == PREVIOUS
    assert leftovers(folder) == []


def test_an_output_folder_that_is_a_file_is_a_clear_error(cli, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(PREVIOUS)
    r = subprocess.run([str(cli), "otis", str(APP1), "--out-dir", str(not_a_folder)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"cannot create output folder {not_a_folder}" in r.stderr, r.stderr
    r = subprocess.run([str(cli), "hydro", "--date", "2024-04-15", "--out",
                        str(not_a_folder / "day.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"cannot write {not_a_folder / 'day.csv'}" in r.stderr, r.stderr
    assert not_a_folder.read_bytes() == PREVIOUS


def test_an_output_that_is_not_a_regular_file_is_not_replaced(cli, tmp_path):
    fifo = tmp_path / "day.csv"
    os.mkfifo(fifo)
    r = subprocess.run([str(cli), "hydro", "--date", "2024-04-15", "--out", str(fifo)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not a regular file" in r.stderr, r.stderr
    assert fifo.is_fifo()


# ----- full disk ------------------------------------------------------------------------

def file_size_limit(limit_bytes: int):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


@pytest.mark.parametrize("command,name", [
    (["otis", str(APP1), "--out-dir", "{dir}"], "cl.out"),
    (["hydro", "--date", "2024-04-15", "--out", "{dir}/day.h5"], "day.h5"),
    (["hydro", "--date", "2024-04-15", "--out", "{dir}/day.csv"], "day.csv"),
    (["simulate", "--scenario", str(ROOT / "data" / "tracing" / "examples" / "drill.yaml"),
      "--observations-out", "{dir}/obs.csv"], "obs.csv"),
])
def test_full_disk_is_a_clear_error_and_keeps_the_previous_file(cli, tmp_path, command, name):
    (tmp_path / name).write_bytes(PREVIOUS)
    args = [a.replace("{dir}", str(tmp_path)) for a in command]
    r = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300,
                       preexec_fn=file_size_limit(4096))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"cannot write {tmp_path / name}" in r.stderr, r.stderr
    assert (tmp_path / name).read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


def test_full_disk_during_the_forecast_file_keeps_the_previous_file(cli, tmp_path):
    inputs = forecast_inputs(tmp_path)
    out = tmp_path / "forecast.h5"
    out.write_bytes(PREVIOUS)
    r = subprocess.run([str(cli), "forecast", "--inputs", str(inputs), "--days", "1",
                        "--members", "4", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=file_size_limit(16384))
    assert r.returncode == 1, r.stderr
    assert "forecast" in r.stderr and str(out) in r.stderr, r.stderr
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


def test_standard_output_on_a_full_disk_is_a_failure(cli):
    with open("/dev/full", "w") as full:
        r = subprocess.run([str(cli), "check", str(ROOT / "data" / "yuncheng" / "network.yaml")],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 1 and "cannot write to standard output" in r.stderr, r.stderr


# ----- corrupt or truncated HDF5 input --------------------------------------------------

@pytest.fixture(scope="module")
def good_observations_h5(tmp_path_factory):
    raw = pd.read_csv(ROOT / "data" / "yuncheng" / "demo" / "observations.csv", comment="#",
                      dtype=str, keep_default_na=False)
    path = tmp_path_factory.mktemp("obs") / "observations.h5"
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        for col in ("time", "station", "species", "flag"):
            f.create_dataset(col, data=raw[col].to_numpy(dtype=object), dtype=text)
        f.create_dataset("value", data=raw["value"].astype(float).to_numpy())
    return path


def corruptions(good: bytes):
    yield "empty", b""
    yield "truncated to half", good[: len(good) // 2]
    yield "truncated to the superblock", good[:96]
    yield "garbage after the signature", good[:8] + bytes(range(256)) * 8
    flipped = bytearray(good)
    for k in range(200, len(flipped), 97):
        flipped[k] ^= 0xFF
    yield "bytes flipped", bytes(flipped)


def test_corrupt_or_truncated_observations_h5_exit_2_naming_the_file(cli, tmp_path, good_observations_h5):
    good = good_observations_h5.read_bytes()
    for what, data in corruptions(good):
        folder = tmp_path / what.replace(" ", "_")
        folder.mkdir()
        bad = folder / "observations.h5"
        bad.write_bytes(data)
        inputs = short_inputs(ROOT, folder / "inputs", str(bad))
        out = folder / "forecast.h5"
        r = subprocess.run([str(cli), "forecast", "--inputs", str(inputs), "--days", "1",
                            "--members", "4", "--threads", "1", "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, f"{what}: rc {r.returncode}: {r.stderr[-2000:]}"
        assert str(bad) in r.stderr, f"{what}: {r.stderr}"
        assert not out.exists()
        # The Python loader reads HDF5 with h5py: an exception, not a crash.
        r = python_reads_observations(bad)
        assert r.returncode == 0 and "raised" in r.stdout, f"{what}: {r.returncode} {r.stdout} {r.stderr[-500:]}"


def python_reads_observations(path: Path):
    """qs.read_observations(path) in a child interpreter (a crash must not end the tests)."""
    code = ("import sys, qingshui as qs\n"
            "try:\n    qs.read_observations(sys.argv[1])\n    print('read')\n"
            "except Exception as e:\n    print('raised', type(e).__name__, e)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)


HDF5_CRASHERS = sorted((ROOT / "tests" / "fuzz" / "regressions" / "obs_hdf5").iterdir())


@pytest.mark.parametrize("bad", HDF5_CRASHERS, ids=[p.name for p in HDF5_CRASHERS])
def test_the_cli_survives_every_file_that_crashed_libhdf5_under_the_fuzzer(cli, tmp_path, bad):
    # Found by fuzz_obs_hdf5 (docs/reliability.md): libhdf5 1.10.8 segfaults, hangs or
    # over-reads on these; the reader checks what it can and reads in a child process.
    inputs = short_inputs(ROOT, tmp_path / "inputs", str(bad))
    r = subprocess.run([str(cli), "forecast", "--inputs", str(inputs), "--days", "1",
                        "--members", "4", "--threads", "1", "--out", str(tmp_path / "f.h5")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"qingshui forecast: {bad}" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("bad", HDF5_CRASHERS, ids=[p.name for p in HDF5_CRASHERS])
def test_the_python_loader_survives_every_file_that_crashed_libhdf5(bad):
    # qs.read_observations uses the engine's checked reader (not h5py): a DataError, in a
    # child interpreter so that a crash would fail this test rather than end the run.
    r = python_reads_observations(bad)
    assert r.returncode == 0 and "raised DataError" in r.stdout, (r.returncode, r.stdout,
                                                                  r.stderr[-500:])


def test_truncated_forecast_file_is_refused_by_the_python_reader(tmp_path, cli):
    inputs = forecast_inputs(tmp_path)
    out = tmp_path / "forecast.h5"
    r = subprocess.run([str(cli), "forecast", "--inputs", str(inputs), "--days", "1",
                        "--members", "4", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises((qs.DataError, OSError)):
        ds = qs.read_forecast(bad)
        ds.load()


# ----- a network file that changes during a run -----------------------------------------

def test_network_changed_during_a_forecast_is_an_error_and_nothing_is_written(cli, tmp_path):
    # A private copy of the network (with the standards file it names, ../standards/).
    network = tmp_path / "yuncheng" / "network.yaml"
    network.parent.mkdir()
    shutil.copy(ROOT / "data" / "yuncheng" / "network.yaml", network)
    shutil.copytree(ROOT / "data" / "standards", tmp_path / "standards")
    inputs = forecast_inputs(tmp_path)
    out = tmp_path / "forecast.h5"
    out.write_bytes(PREVIOUS)
    proc = subprocess.Popen([str(cli), "forecast", "--inputs", str(inputs), "--network",
                             str(network), "--days", "3", "--members", "60", "--threads", "1",
                             "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the first progress line: the network has been read
    assert first.startswith("qingshui forecast: hindcast"), first
    running = proc.poll() is None
    with open(network, "a", encoding="utf-8") as f:
        f.write("# edited while a forecast was running\n")
    _, err = proc.communicate(timeout=300)
    if not running:
        pytest.skip("the forecast ended before the network could be changed")
    assert proc.returncode == 1, err
    assert f"network file {network} changed during the run" in err, err
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []
