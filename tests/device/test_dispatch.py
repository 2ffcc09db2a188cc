"""The agent's dispatch agrees with protocol/ops.py both ways, and a miss is a refusal.

protocol/ops.py is the one list of operation codes; each handler group's ``HANDLERS`` table
(device/op_*.py, and PING's in agent.py) says which codes it answers; ``agent._group`` routes a
code to its group by range.  These tests fail when a new operation misses one of those steps.
"""

import importlib
import re

import pytest
from support.paths import ROOT

from kpdev.device import agent as agent_module
from kpdev.device.agent import Agent
from kpdev.device.refusals import unknown_operation
from kpdev.protocol import names, ops
from kpdev.protocol.errors import DeviceError

# Named in ops.py, answered by no agent yet: docs/protocol.md lists its code as reserved.
NOT_ANSWERED = {ops.LEARN_LOAD}
GROUPS = ["agent"] + sorted(p.stem for p in (ROOT / "device").glob("op_*.py"))


def handlers(group):
    return importlib.import_module("kpdev.device." + group).HANDLERS


def test_every_operation_has_one_name_and_code():
    op_names = [n for n in dir(ops) if names._is_op(n)]
    assert len(names.OP_NAMES) == len(op_names), "two operations share a code in ops.py"
    assert all(0 < op < 0x80 for op in names.OP_NAMES)
    assert set(names.EVENTS) <= set(names.OP_NAMES)
    assert len(names.ERROR_NAMES) == len([n for n in dir(ops) if n.startswith("E_")])


@pytest.mark.parametrize("op", names.REQUESTS, ids=names.op_name)
def test_each_request_of_ops_routes_to_the_table_that_answers_it(op):
    group = agent_module._group(op)
    assert group in GROUPS, "agent._group has no handler group for %s" % names.op_name(op)
    if op in handlers(group):
        return
    assert op in NOT_ANSWERED, "%s has no handler in kpdev.device.%s" % (names.op_name(op), group)
    assert not [g for g in GROUPS if op in handlers(g)]
    assert unknown_operation(op).code == ops.E_NOT_IMPLEMENTED


@pytest.mark.parametrize("group", GROUPS)
def test_each_handler_is_for_a_request_of_ops_routed_to_its_group(group):
    table = handlers(group)
    assert table
    for op, handler in table.items():
        assert op in names.REQUESTS, "%s answers 0x%02x, not a request in ops.py" % (group, op)
        assert agent_module._group(op) == group, "%s routes elsewhere" % names.op_name(op)
        assert callable(handler)


def test_codes_past_the_ranges_route_nowhere():
    # No import for them: LOG and ERROR sent as requests are refused at once.
    for op in [ops.LOG, ops.ERROR, 0x70, 0x7E, 0x80, 0xFF]:
        assert agent_module._group(op) is None


def test_the_protocol_doc_lists_every_operation():
    text = (ROOT / "docs" / "protocol.md").read_text()
    rows = dict(re.findall(r"^\| `0x([0-9A-F]{2})` \| ([A-Z_]+) \|", text, re.M))
    answered = {op for g in GROUPS for op in handlers(g)}
    for op in sorted(answered | set(names.EVENTS)):
        assert rows.get("%02X" % op) == names.OP_NAMES[op], names.OP_NAMES[op]


@pytest.fixture
def agent(tmp_path):
    a = Agent(str(tmp_path / "state"))
    yield a
    a.close()


@pytest.mark.parametrize(
    "op, code",
    [
        (ops.LEARN_LOAD, ops.E_NOT_IMPLEMENTED),  # named, in the reserved part of LEARN
        (ops.POWER_FIRST + 3, ops.E_NOT_IMPLEMENTED),
        (0x18, ops.E_UNKNOWN_OP),  # in op_models's range, which does not answer it
        (ops.LOG, ops.E_UNKNOWN_OP),
        (0xFF, ops.E_UNKNOWN_OP),
    ],
)
def test_a_code_without_a_handler_is_refused_naming_it(agent, op, code):
    with pytest.raises(DeviceError) as e:
        agent.request(op)
    assert e.value.code == code and "0x%02x" % op in e.value.message


def test_a_table_missing_an_operation_is_a_refusal_not_a_key_error(agent, monkeypatch):
    """What a HANDLERS table that lost an entry does at run time: UNKNOWN_OP naming the op."""
    from kpdev.device import op_models

    table = dict(op_models.HANDLERS)
    del table[ops.MODEL_DELETE]
    monkeypatch.setattr(op_models, "HANDLERS", table)
    with pytest.raises(DeviceError) as e:
        agent.request(ops.MODEL_DELETE, {"name": "m"})
    assert e.value.code == ops.E_UNKNOWN_OP and "0x17" in e.value.message
    assert agent.request(ops.MODEL_LIST)["models"] == []  # the group itself still answers
