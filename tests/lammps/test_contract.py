"""The plugin's C++ copies of the Python side's constants: format version, module contract and
the non-local refusal's reason must be the same text, or the plugin misreads exported files."""

import re

from so3k.capabilities import NONLOCAL_REASON
from so3k.export.lammps import CONTRACT
from so3k.export.metadata import FORMAT_VERSION
from so3k.lammps.build import SOURCE_DIR


def cpp_constants():
    source = (SOURCE_DIR / "pair_so3krates.cpp").read_text()
    strings = {}
    for name, body in re.findall(r"static const char \*const (\w+) =\s*((?:\"(?:[^\"\\]|\\.)*\"\s*)+);", source):
        strings[name] = "".join(re.findall(r"\"((?:[^\"\\]|\\.)*)\"", body))  # adjacent literals concatenate
    (version,) = re.findall(r"static constexpr int FORMAT_VERSION = (\d+);", source)
    return int(version), strings


def test_the_plugin_reads_the_format_and_contract_that_export_writes():
    version, strings = cpp_constants()
    assert version == FORMAT_VERSION
    assert strings["CONTRACT"] == CONTRACT


def test_the_plugin_gives_the_same_reason_for_refusing_a_non_local_model():
    _, strings = cpp_constants()
    assert strings["NONLOCAL_REASON"] == NONLOCAL_REASON
