"""The hostile-input corpus through `mimical import`: an `InputError` naming the file, no corpus."""

from __future__ import annotations

import pytest

from mimical.corpus.importer import import_exports
from mimical.errors import InputError
from tests.hostile.cases import BUILD_FAILURES, UPLOADS

REFUSED = {name: upload for name, upload in UPLOADS.items() if upload.import_refuses}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_export_is_refused_naming_the_file(tmp_path, case):
    upload = REFUSED[case]
    export = tmp_path / upload.filename
    export.write_bytes(upload.make())
    output = tmp_path / "corpus.jsonl"
    with pytest.raises(InputError, match=f"^{export}"):
        import_exports(export, output)
    assert not output.exists()


@pytest.mark.parametrize("case", list(BUILD_FAILURES))
def test_impossible_telegram_times_are_refused(tmp_path, case):
    data, words = BUILD_FAILURES[case]
    export = tmp_path / "result.json"
    export.write_bytes(data)
    with pytest.raises(InputError, match=f"^{export}: .*{words}"):
        import_exports(export, tmp_path / "corpus.jsonl")
