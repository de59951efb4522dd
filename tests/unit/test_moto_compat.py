"""The local stack's moto patches are checked against the moto that is installed: an upgrade fails
here until each patch is looked at again (still needed: bump its verified_on; fixed: drop it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import moto
import pytest

from queryall_local import moto_compat


@pytest.mark.parametrize("patch", moto_compat.PATCHES, ids=lambda patch: patch.name)
def test_each_patch_was_verified_on_the_installed_moto(patch: moto_compat.MotoPatch) -> None:
    assert patch.verified_on == moto.__version__, (
        f"moto is {moto.__version__}; check whether {patch.name} is still needed ({patch.works_around}) "
        "and set its verified_on, or drop it")


def test_unverified_names_the_patches_checked_against_another_version() -> None:
    assert moto_compat.unverified(moto.__version__) == []
    assert moto_compat.unverified("99.0.0") == list(moto_compat.PATCHES)


def test_each_service_s_patches() -> None:
    assert {patch.name for patch in moto_compat.patches_for("stepfunctions")} == {
        "sfn-item-batcher", "sfn-parse-once", "sfn-lambda-client-once", "sfn-unnamed-executions",
        "sfn-status-change-events", "sfn-stopped-stays-aborted", "sfn-express-children"}
    assert [patch.name for patch in moto_compat.patches_for("s3")] == []


# In a child process: a local stack running in this one would have moto's parser patched.
UNPATCHED_PARSER = textwrap.dedent(
    """
    import sys
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    try:
        AmazonStateLanguageParser.parse(sys.argv[1])
    except Exception as exc:
        print("rejected", type(exc).__name__)
    else:
        print("parsed")
    """
)


def distributed_map(execution_type: str, *, batched: bool) -> dict:
    """A definition of one distributed Map state (with an ItemBatcher when ``batched``) over a Pass."""
    batcher = {"ItemBatcher": {"MaxItemsPerBatch": 2}} if batched else {}
    return {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, **batcher,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}


def run_script(script: str, definition: str) -> subprocess.CompletedProcess[str]:
    """The script run in a fresh interpreter (moto unpatched) with the definition as its argument."""
    return subprocess.run([sys.executable, "-c", script, definition], capture_output=True, text=True, timeout=60)


def test_moto_still_cannot_parse_an_item_batcher() -> None:
    """What sfn-item-batcher works around; when this fails, moto parses ItemBatcher: drop the patch."""
    definition = distributed_map("STANDARD", batched=True)
    result = run_script(UNPATCHED_PARSER, json.dumps(definition))
    assert result.stdout.startswith("rejected"), (result.stdout, result.stderr[-2000:])
    stripped = moto_compat.without_item_batchers(json.dumps(definition))
    result = run_script(UNPATCHED_PARSER, stripped)
    assert result.stdout.strip() == "parsed", result.stderr[-2000:]


def test_moto_still_cannot_parse_express_children() -> None:
    """What sfn-express-children works around; when this fails, moto parses EXPRESS: drop the patch."""
    definition = distributed_map("EXPRESS", batched=False)
    result = run_script(UNPATCHED_PARSER, json.dumps(definition))
    assert result.stdout.startswith("rejected"), (result.stdout, result.stderr[-2000:])
    read = moto_compat.express_children_as_standard(json.dumps(definition))
    assert json.loads(read)["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"
    result = run_script(UNPATCHED_PARSER, read)
    assert result.stdout.strip() == "parsed", result.stderr[-2000:]


def test_item_batchers_are_read_from_nested_map_states_too() -> None:
    definition = {"StartAt": "Outer", "States": {"Outer": {
        "Type": "Map", "End": True, "ItemBatcher": {"MaxItemsPerBatch": 5},
        "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {
            "Type": "Map", "End": True, "ItemBatcher": {"MaxItemsPerBatch": 2},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}}}}
    assert moto_compat.item_batchers(json.dumps(definition)) == {
        "Outer": {"MaxItemsPerBatch": 5}, "Inner": {"MaxItemsPerBatch": 2}}


def test_a_batcher_is_found_by_state_machine_and_state() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:compat-test"
    other = arn + "-other"
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "ItemBatcher": {"MaxItemsPerBatch": 2},
                                                  "ItemProcessor": {"StartAt": "P", "States": {
                                                      "P": {"Type": "Pass", "End": True}}}}}}
    moto_compat._remember_item_batchers(arn, json.dumps(definition))
    try:
        assert moto_compat.batcher_for(arn, "M") == {"MaxItemsPerBatch": 2}
        assert moto_compat.batcher_for(arn + ":3", "M") == {"MaxItemsPerBatch": 2}  # a published version
        assert moto_compat.batcher_for(other, "M") is None
    finally:
        moto_compat._remember_item_batchers(arn, json.dumps({"States": {}}))


# In a child process, as above: the patch applied, a definition parsed twice.
PARSED_TWICE = textwrap.dedent(
    """
    import contextlib, sys
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from queryall_local import moto_compat

    with contextlib.ExitStack() as patches:
        moto_compat.apply("stepfunctions", patches)
        first, first_tree = AmazonStateLanguageParser.parse(sys.argv[1])
        second, second_tree = AmazonStateLanguageParser.parse(sys.argv[1])
        try:
            AmazonStateLanguageParser.parse('{"StartAt": "A", "States": {"A": {"Type": "Bogus"}}}')
        except Exception as exc:
            rejected = type(exc).__name__
    print(second_tree is first_tree, second is not first, type(second).__name__, rejected)
    """
)


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program() -> None:
    definition = distributed_map("STANDARD", batched=True)
    result = run_script(PARSED_TWICE, json.dumps(definition))
    # The same tree (parsed once, ItemBatcher taken out as before), a fresh program from it; a broken
    # definition is still rejected.
    assert result.stdout.split() == ["True", "True", "Program", "ASLParserException"], result.stderr[-2000:]
