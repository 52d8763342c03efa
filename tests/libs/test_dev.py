"""ci/dev.py: the README's commands bootstrap what they need, or say what is missing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.libs


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        ([], True),
        (["-m", "render"], False),
        (["-m", "not image and not workflows"], False),
        (["-m", "libs or render"], False),
        (["-m", "image"], True),
        (["-mworkflows"], True),
        (["-m", "not project"], True),
        (["-k", "oidc"], True),
    ],
)
def test_only_runs_that_may_select_image_or_workflows_need_the_image_tools(
    args: list[str], needed: bool
) -> None:
    from ci.dev import tiers_need_images

    assert tiers_need_images(args) is needed


def test_without_root_the_missing_tools_are_named_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci import dev

    monkeypatch.setattr(dev.os, "geteuid", lambda: 1000)
    tools = {"buildah": "buildah", "paved-no-such-tool": "paved-no-such-package"}
    monkeypatch.setattr(
        dev.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "buildah" else None
    )
    assert dev.ensure_system_tools(tools, "the image and workflows test tiers") is False
    message = capsys.readouterr().err
    assert "need paved-no-such-tool, not found" in message
    assert "sudo apt-get install paved-no-such-package" in message
    assert "buildah" not in message.split("need", 1)[1].split("\n")[0]
    assert len(message.strip().splitlines()) == 3


def test_nothing_missing_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci import dev

    monkeypatch.setattr(dev.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(dev.subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    assert dev.ensure_system_tools(dev.IMAGE_TOOLS, "x") is True
