"""ci/dev.py: the README's commands bootstrap what they need, or say what is missing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.libs


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        ([], {"kubectl", "buildah", "docker-registry"}),
        (["-m", "render"], {"kubectl"}),
        (["-m", "not image and not workflows"], {"kubectl"}),
        (["-m", "libs or update"], set()),
        (["-m", "image"], {"buildah", "docker-registry", "kubectl"}),
        (["-mworkflows"], {"buildah", "docker-registry", "kubectl"}),
        (["-m", "not project"], {"kubectl", "buildah", "docker-registry"}),
        (["-k", "oidc"], {"kubectl", "buildah", "docker-registry"}),
    ],
)
def test_a_run_needs_the_tools_of_the_tiers_it_may_select(
    args: list[str], needed: set[str]
) -> None:
    from ci.dev import selected_tiers, tier_tools

    tools = tier_tools(selected_tiers(args))
    assert needed <= tools.keys()
    assert ("kubectl" in tools) is ("kubectl" in needed)
    assert ("buildah" in tools) is ("buildah" in needed)


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
