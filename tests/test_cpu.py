"""The host CPU's fields (harness/cpu.py): the first processor's block of /proc/cpuinfo."""

from harness import cpu


def test_fields_are_the_first_processors(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B45\n"
                    "flags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    assert cpu.fields(info) == {"processor": "0", "vendor_id": "AuthenticAMD", "model name": "AMD EPYC 9B45",
                                "flags": "fpu avx2"}
    assert cpu.flags(info) == {"fpu", "avx2"}


def test_arm_features_and_no_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd sve\nCPU part\t: 0xd40\n")
    assert cpu.flags(info) == {"fp", "asimd", "sve"}
    assert cpu.fields(tmp_path / "missing") == {} and cpu.flags(tmp_path / "missing") == frozenset()
