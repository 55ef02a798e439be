"""Target files: discovery, field checks with messages that name the file and the fix, the shipped targets."""
import pytest

from edgecompress import bench
from edgecompress.bench import KINDS, targets
from edgecompress.bench.rootfs import apt_mirror
from edgecompress.errors import TargetError
from tests.bench.conftest import write_toml


@pytest.fixture
def target_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECOMPRESS_TARGETS", str(tmp_path))
    return tmp_path


def test_every_shipped_target_parses_and_names_a_kind():
    shipped = targets.discover()
    assert {"host", "rpi4", "rpi5", "android-arm64", "arm64-qemu", "host-tflite-runtime"} <= set(shipped)
    for name in shipped:
        target = bench.get_target(name)
        assert target.KIND in KINDS and target.config.description


def test_unknown_target_name_suggests_a_close_one():
    with pytest.raises(TargetError, match=r"unknown target 'rpi44' \(did you mean 'rpi4'\?\).*rpi5"):
        bench.get_target("rpi44")


def test_misspelled_field_is_named_with_the_fix(target_dir):
    write_toml(target_dir / "pi.toml", kind="ssh", hots="pi.local")
    with pytest.raises(TargetError, match=r"pi.toml: unknown field 'hots' \(did you mean 'host'\?"):
        bench.get_target("pi")


def test_missing_field_is_named(target_dir):
    write_toml(target_dir / "pi.toml", kind="ssh", user="pi")
    with pytest.raises(TargetError, match=r"pi.toml: missing field 'host'"):
        bench.get_target("pi")


@pytest.mark.parametrize("fields, message", [
    ({"kind": "ssh", "host": "pi", "port": "22"}, "field 'port' must be int"),
    ({"kind": "ssh", "host": "pi", "ssh_options": [1]}, "list of strings"),
    ({"kind": "serial"}, "field 'kind' must be one of host, ssh, adb, qemu"),
    ({"description": "no kind"}, "field 'kind' must be one of"),
])
def test_wrong_values_are_refused(target_dir, fields, message):
    write_toml(target_dir / "bad.toml", **fields)
    with pytest.raises(TargetError, match=message):
        bench.get_target("bad")


def test_invalid_toml_and_missing_file(target_dir):
    (target_dir / "broken.toml").write_text("kind = \n")
    with pytest.raises(TargetError, match="broken.toml: not valid TOML"):
        bench.get_target("broken")
    with pytest.raises(TargetError, match="nowhere.toml does not exist"):
        bench.get_target(str(target_dir / "nowhere.toml"))


def test_earlier_directories_shadow_the_shipped_targets(target_dir):
    write_toml(target_dir / "rpi4.toml", kind="ssh", host="my-pi", description="mine")
    assert bench.get_target("rpi4").config["host"] == "my-pi"


def test_apt_mirror_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://one.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: trixie trixie-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\nComponents: main\n")
    assert apt_mirror("bookworm", tmp_path) == "http://one.example/debian"
    assert apt_mirror("trixie", tmp_path) == "http://two.example/debian"
    assert apt_mirror("bullseye", tmp_path) is None


def test_target_list_shows_every_target(capsys):
    from edgecompress.cli import main

    assert main(["target", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[2] for line in lines[1:]}
    assert {"host", "rpi4", "rpi5", "android-arm64", "arm64-qemu"} <= set(listed)
    assert lines[1].startswith("host ") and listed["rpi4"] == "configured"
