"""qingshui.load_network and the Network tables, on the default Yuncheng network."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

import qingshui as qs


@pytest.fixture(scope="module")
def net(default_network_path):
    return qs.load_network(default_network_path)


def test_tables_have_the_documented_columns(net):
    assert list(net.sources().columns[:5]) == ["id", "name", "kind", "reach", "km"]
    assert list(net.stations().columns[:5]) == ["id", "name", "kind", "reach", "km"]
    assert list(net.reaches().columns[:4]) == ["id", "name", "length_km", "downstream"]
    for frame in (net.sources(), net.stations(), net.reaches(), net.lakes(), net.species()):
        assert isinstance(frame, pd.DataFrame) and not frame.empty


def test_assessment_sections_and_species(net):
    stations = net.stations().set_index("id")
    assert stations.loc["zhangliuzhuang", "kind"] == "assessment_section"
    assert stations.loc["miaoqian", "kind"] == "assessment_section"
    assert "张留庄" in stations.loc["zhangliuzhuang", "name_zh"]
    assert set(net.species()["id"]) >= {"COD", "NH3N", "TP", "F"}


def test_every_source_is_on_its_reach(net):
    reaches = net.reaches().set_index("id")
    for _, s in net.sources().iterrows():
        r = reaches.loc[s["reach"]]
        assert r["start_km"] - 1e-6 <= s["km"] <= r["end_km"] + 1e-6, s["id"]


def test_every_number_has_provenance(net):
    prov = net.provenance()
    assert len(prov) > 100
    assert set(prov["kind"]) <= {"S", "M", "E"}, prov[prov["kind"] == "?"].head()


def test_default_path_and_pathlike(default_network_path):
    assert qs.load_network(Path(default_network_path)).name == qs.load_network().name


def test_upstream_sources_of_miaoqian_are_on_the_fen(net):
    ups = net.upstream_sources("miaoqian")
    rivers = net.reaches().set_index("id")["river"]
    reach_of = net.sources().set_index("id")["reach"]
    assert len(ups) > 0
    assert set(rivers[reach_of[ups["source"]]]) <= {"fen", "kuai"}
    assert ups["distance_km"].is_monotonic_increasing


def test_round_trip_through_yaml(net, tmp_path):
    path = tmp_path / "copy.yaml"
    text = net.to_yaml()
    # Relative standards path: keep the copy next to a standards folder as in data/.
    (tmp_path / "standards").mkdir()
    std = Path(net.file).parent.parent / "standards" / "gb3838-2002.yaml"
    (tmp_path / "standards" / "gb3838-2002.yaml").write_text(std.read_text(encoding="utf-8"), encoding="utf-8")
    sub = tmp_path / "yuncheng"
    sub.mkdir()
    (sub / "network.yaml").write_text(text, encoding="utf-8")
    again = qs.load_network(sub / "network.yaml")
    pd.testing.assert_frame_equal(again.sources(), net.sources())
    pd.testing.assert_frame_equal(again.stations(), net.stations())


def test_invalid_network_raises_config_error_with_the_cli_message(tmp_path, default_network_path, cli):
    text = default_network_path.read_text(encoding="utf-8")
    broken = text.replace("zhangliuzhuang", "zhangliuzhuang\n    bogus_key: 1", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(qs.ConfigError) as info:
        qs.load_network(path)
    message = str(info.value)
    assert str(path) in message and "bogus_key" in message and "unknown key" in message
    assert isinstance(info.value, qs.Error)
    run = subprocess.run([str(cli), "check", str(path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert message in run.stderr


def test_malformed_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("format: qingshui-network\nreaches: [unclosed\n", encoding="utf-8")
    with pytest.raises(qs.ConfigError, match=r"bad\.yaml:\d+: .*malformed YAML"):
        qs.load_network(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(qs.ConfigError, match="cannot open"):
        qs.load_network(tmp_path / "absent.yaml")


def test_normal_depth_conserves_flow():
    r = qs.normal_depth(1.4, 15.0, 1.0, 0.03, 1 / 400)
    assert r["velocity_ms"] * r["area_m2"] == pytest.approx(1.4, rel=1e-12)
    with pytest.raises(qs.ConfigError):
        qs.normal_depth(-1.0, 15.0, 1.0, 0.03, 1 / 400)
