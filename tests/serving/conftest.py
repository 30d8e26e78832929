from tests.serving.fixtures import chat_settings, personas, served_models  # noqa: F401

# DEV-ONLY override (remove): fake model until A's small_corpus lands
import pytest as _pytest
from types import SimpleNamespace as _NS
@_pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    import shutil, pathlib
    base = tmp_path_factory.mktemp("models")
    shutil.copytree("/tmp/c_dev/models/fake/1", base / "tiny" / "1")
    return _NS(model_base=base, name="tiny", version=1, export_dir=base / "tiny" / "1")
