"""Every refused file of the hostile corpus uploaded in Manual Color: an error naming the file and
its reason, the page (and the server) still works: the sample loads afterwards."""

from __future__ import annotations

from tests.pages.conftest import upload
from tests.unit.test_hostile_corpus import HOSTILE, REFUSED, SAMPLE


def test_each_refused_file_gets_an_error_naming_it_and_the_page_keeps_working(app_as):
    at = app_as("ana", "analyst", page="pages/manual_color.py")
    at.button(key="manual_color.start").click().run()
    assert not at.exception
    for name, fragment in REFUSED:
        at = upload(at, "manual_color.files", (name, (HOSTILE / name).read_bytes()))
        at.button(key="manual_color.load_files").click().run()
        assert not at.exception, name
        errors = [e.value for e in at.error]
        assert any(name in e and fragment in e for e in errors), (name, errors)
    at = upload(at, "manual_color.files", (SAMPLE.name, SAMPLE.read_bytes()))
    at.button(key="manual_color.load_files").click().run()
    assert not at.exception
    assert not at.error
    assert f"Loaded: {SAMPLE.name}" in [c.value for c in at.caption]
