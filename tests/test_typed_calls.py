"""mypy knows the type of a typed call's answer (issue 24: typed contracts).

mypy's API checks tests/typecheck/calls.py, and each ``reveal_type`` there
must reveal the answer type its ``Contract[R]`` or ``returns=`` gives; a
wrong annotation must be an error.
"""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

CALLS = Path(__file__).parent / "typecheck" / "calls.py"


#: A call whose answer is assigned to the wrong type: mypy must refuse it.
WRONG = """
from coterie import Requester
from tests.typecheck.calls import Validate

async def wrong(requester: Requester) -> None:
    answer: str = await requester.call(Validate(cardno="4111"))
"""


def test_mypy_infers_the_answer_type_of_typed_calls() -> None:
    stdout, stderr, status = api.run([str(CALLS), "--strict", "--no-incremental"])
    revealed = re.findall(r'calls\.py:(\d+): note: Revealed type is "([^"]+)"', stdout)
    lines = CALLS.read_text().splitlines()
    shown = {lines[int(n) - 1].strip(): t for n, t in revealed}
    assert shown == {
        'reveal_type(await requester.call(Validate(cardno="4111")))': "bool",
        'reveal_type(await requester.call(Order(skus=["a"])))': "tests.typecheck.calls.Receipt",
        'reveal_type(await requester.call({"type": "validate", "cardno": "4111"}, '
        "returns=bool))": "bool",
        'reveal_type(await requester.call(Validate(cardno="4111"), returns=int))': "int",
        'reveal_type(await requester.call({"type": "validate", "cardno": "4111"}))': "Any",
        "reveal_type(await requester.call(Untyped(), returns=list[int]))": "list[int]",
        'reveal_type(await requester.send({"type": "validate"}))': "Any",
        "reveal_type(Validate.type)": "str",
        'reveal_type(requester.call(Order(skus=["a"])))': "tests.typecheck.calls.Receipt",
        'reveal_type(requester.call({"type": "validate", "cardno": "4111"}, returns=int))': "int",
    }, stdout
    assert "error" not in stdout, stdout
    assert status == 0, (stdout, stderr)


def test_mypy_refuses_an_answer_assigned_to_the_wrong_type() -> None:
    stdout, _, status = api.run(["--config-file=", "--strict", "--no-incremental", "-c", WRONG])
    assert status == 1
    assert re.findall(r"<string>:\d+: error: (.*)", stdout) == [
        'Argument 1 to "call" of "Requester" has incompatible type "Validate"; '
        'expected "Contract[str]"  [arg-type]'
    ], stdout
