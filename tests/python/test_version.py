"""The version has one source (pyproject.toml): the package, its metadata and
the `cpuledger` binary it ships all say the same."""

import importlib.metadata
import subprocess

import cpuledger
from conftest import cpuledger_exe


def test_the_cli_the_package_and_its_metadata_agree_on_the_version():
    cli = subprocess.run([cpuledger_exe(), "--version"], capture_output=True, text=True, check=True)
    assert cli.stdout.strip() == cpuledger.__version__
    assert importlib.metadata.version("cpuledger") == cpuledger.__version__
