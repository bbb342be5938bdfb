"""The catalogue files are parsed with libyaml where PyYAML has it; what they mean and how errors read do not change."""

from __future__ import annotations

import pytest
import yaml

from emulator import catalog
from emulator.catalog import bundled_model_file


@pytest.mark.parametrize("name", ["catalog.yaml", "bedrock-models.yaml"])
def test_the_bundled_files_read_the_same_with_either_parser(name):
    text = bundled_model_file(name).read_text()
    assert catalog._parse(text) == yaml.safe_load(text)


def test_a_broken_file_is_reported_in_the_pure_python_parsers_words(tmp_path):
    broken = tmp_path / "catalog.yaml"
    broken.write_text("models:\n  - id: a\n   family: [unclosed\n")
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.safe_load(broken.read_text())
    with pytest.raises(SystemExit) as exited:
        catalog.Catalog.load(broken)
    assert str(pure.value) in str(exited.value)
