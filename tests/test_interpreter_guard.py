"""The guard's snapshots: made once in the zygote and adopted by sessions while unchanged.

In-process checks of what :mod:`guard` decides (``restore`` itself rebinds this process's
stdout, so it is exercised in sessions by the hostile tests); whether a cell's poisoning is
undone is tested there too.
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from datamind_ext.interpreter import guard

pytestmark = pytest.mark.skipif(guard._version is None, reason="dict versions not readable on this interpreter")


def test_dict_version_changes_with_every_modification_and_only_then():
    d = {"a": 1}
    v0 = guard._version(d)
    assert guard._version(d) == v0
    d["a"] = 1  # the same object again changes nothing
    assert guard._version(d) == v0
    d["a"] = 10**30
    v1 = guard._version(d)
    d["b"] = 2
    v2 = guard._version(d)
    del d["b"]
    v3 = guard._version(d)
    assert v0 < v1 < v2 < v3


def test_a_session_adopts_the_zygotes_copy_without_touching_the_values():
    mod = types.ModuleType("guard_probe")
    mod.value = object()
    guard.prepare((mod,))
    refs = sys.getrefcount(mod.value)
    live, snap, seen = guard._snapshot(mod.__dict__)
    refs_after = sys.getrefcount(mod.value)
    assert refs_after == refs  # no new reference: the value's page stays shared
    assert live is mod.__dict__ and snap is guard._PREPARED[id(mod.__dict__)][1] and seen == guard._version(live)


def test_a_namespace_changed_after_the_zygotes_copy_is_copied_again():
    mod = types.ModuleType("guard_probe_changed")
    mod.value = 1
    guard.prepare((mod,))
    mod.value = 2  # e.g. the session's own setup changed it before the guard was made
    live, snap, seen = guard._snapshot(mod.__dict__)
    assert snap is not guard._PREPARED[id(mod.__dict__)][1] and snap["value"] == 2 and seen == guard._version(live)


def test_class_snapshots_read_the_dict_behind_the_proxy():
    live = guard._class_dict(json.JSONEncoder)
    assert type(live) is dict and live == dict(json.JSONEncoder.__dict__)
