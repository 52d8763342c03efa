"""paved.template's Jinja memo: a source compiled once per kind of environment, no more."""

from __future__ import annotations

import pytest
from jinja2 import Environment, TemplateAssertionError
from jinja2.sandbox import SandboxedEnvironment
from paved import template

pytestmark = pytest.mark.libs

SOURCE = "{{ x }} [[ x ]]"


def test_the_same_source_in_a_like_environment_is_compiled_once() -> None:
    template._compile_once()
    template._compile_once()  # installed once, not wrapped twice
    first, second = SandboxedEnvironment(), SandboxedEnvironment()
    assert first.compile(SOURCE) is second.compile(SOURCE)
    assert first.from_string(SOURCE).render(x=1) == "1 [[ x ]]"
    assert second.from_string(SOURCE).render(x=2) == "2 [[ x ]]"


def test_an_environment_that_compiles_differently_gets_its_own_code() -> None:
    template._compile_once()
    plain, brackets = SandboxedEnvironment(), SandboxedEnvironment(variable_start_string="[[")
    brackets.variable_end_string = "]]"
    unsandboxed, trimmed = Environment(), SandboxedEnvironment(trim_blocks=True)
    codes = {id(env.compile(SOURCE)) for env in (plain, brackets, unsandboxed, trimmed)}
    assert len(codes) == 4
    assert plain.from_string(SOURCE).render(x=1) == "1 [[ x ]]"
    assert brackets.from_string(SOURCE).render(x=1) == "{{ x }} 1"
    # A filter's name is checked when compiling: an environment without it still refuses.
    shouting = SandboxedEnvironment()
    shouting.filters["shout"] = str.upper
    assert shouting.from_string("{{ x | shout }}").render(x="hi") == "HI"
    with pytest.raises(TemplateAssertionError, match="shout"):
        SandboxedEnvironment().from_string("{{ x | shout }}")
