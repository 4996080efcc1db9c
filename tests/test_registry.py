"""The one registry pattern (vlthinker.registry): registering, aliases, lookup, scoped removal."""

from __future__ import annotations

import pytest

from vlthinker.registry import Registry, UnknownNameError


def _lower(name: str) -> str:
    return name.strip().lower().replace("-", "_")


@pytest.fixture
def fruits() -> Registry[int]:
    registry: Registry[int] = Registry("fruit")
    registry.add("apple", 1, colour="red")
    registry.add("pear", 2, aliases=("poire", "birne"))
    return registry


def test_register_decorator_keeps_the_entry_and_its_metadata() -> None:
    registry: Registry[object] = Registry("thing")

    @registry.register("double", arity=1)
    def double(x: int) -> int:
        return 2 * x

    assert double(3) == 6  # the decorator returns its target unchanged
    assert registry.get("double") is double
    assert registry.meta("double") == {"arity": 1}
    assert "double" in registry and len(registry) == 1
    assert registry.names() == ("double",) and list(registry) == ["double"]
    assert registry.items() == [("double", double)]


def test_names_are_sorted_and_invalid_names_refused(fruits: Registry[int]) -> None:
    assert fruits.names() == ("apple", "pear")
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="non-empty string name"):
            fruits.add(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alias must be a non-empty string"):
        fruits.add("plum", 0, aliases=("",))
    assert "plum" not in fruits  # a refused registration leaves nothing behind


def test_registering_a_name_twice_is_refused_unless_replace(fruits: Registry[int]) -> None:
    with pytest.raises(ValueError, match="fruit 'apple' is already registered; pass replace=True"):
        fruits.add("apple", 10)
    assert fruits.get("apple") == 1
    fruits.add("apple", 10, replace=True, colour="green")
    assert fruits.get("apple") == 10 and fruits.meta("apple") == {"colour": "green"}


def test_replace_drops_the_old_aliases(fruits: Registry[int]) -> None:
    fruits.add("pear", 20, aliases=("peer",), replace=True)
    assert fruits.get("peer") == 20
    assert "poire" not in fruits and fruits.aliases("pear") == ("peer",)


def test_aliases_look_up_the_same_entry(fruits: Registry[int]) -> None:
    assert fruits.get("poire") == fruits.get("birne") == fruits.get("pear") == 2
    assert fruits.resolve("birne") == ("pear", "birne")  # which spelling matched
    assert fruits.resolve("pear") == ("pear", "pear")
    assert fruits.canonical("poire") == "pear"
    assert fruits.meta("poire") is fruits.meta("pear")
    assert fruits.aliases("pear") == ("poire", "birne")  # as registered
    assert fruits.aliases() == ("birne", "poire")  # all of them, sorted
    assert fruits.check("poire") == "poire"
    assert fruits.names() == ("apple", "pear")  # aliases are not names
    assert "poire" in fruits
    # without a normaliser, spelling matters
    assert "Poire" not in fruits
    with pytest.raises(UnknownNameError):
        fruits.get("Poire")


def test_an_alias_taken_by_another_entry_is_refused(fruits: Registry[int]) -> None:
    with pytest.raises(ValueError, match="'poire' already names fruit 'pear'"):
        fruits.add("quince", 3, aliases=("poire",))
    with pytest.raises(ValueError, match="'apple' already names fruit 'apple'"):
        fruits.add("pomme", 3, aliases=("apple",))
    # even replace=True does not let one entry take another's alias
    with pytest.raises(ValueError, match="already names fruit 'pear'"):
        fruits.add("apple", 3, aliases=("birne",), replace=True)
    assert fruits.get("apple") == 1 and "quince" not in fruits and "pomme" not in fruits


def test_normalised_lookup() -> None:
    registry: Registry[str] = Registry("answer kind", normalise=_lower)
    registry.add("multiple_choice", "mc", aliases=("Multiple Choice", "mcq"))
    assert registry.get("MULTIPLE-CHOICE") == "mc"
    assert registry.get("  Mcq ") == "mc"
    assert registry.resolve("multiple choice") == ("multiple_choice", "Multiple Choice")
    assert registry.resolve("multiple_choice") == ("multiple_choice", "multiple_choice")
    assert "MCQ" in registry and "multiple-choice" in registry
    # a name that only differs in normalised spelling is the same name
    with pytest.raises(ValueError, match="'Multiple-Choice' already names answer kind"):
        registry.add("Multiple-Choice", "other")


def test_unknown_name_message_lists_names_and_aliases(fruits: Registry[int]) -> None:
    with pytest.raises(
        UnknownNameError, match=r"^unknown fruit 'kiwi'; known: apple, pear; aliases: birne, poire$"
    ):
        fruits.get("kiwi")
    plain: Registry[int] = Registry("colour")
    plain.add("red", 1)
    with pytest.raises(UnknownNameError, match=r"^unknown colour 'blue'; known: red$"):
        plain.get("blue")  # no aliases: no alias list
    for bad in (None, 3, ["red"]):
        with pytest.raises(UnknownNameError):
            plain.get(bad)  # type: ignore[arg-type]
        assert bad not in plain
    with pytest.raises(UnknownNameError):
        fruits.meta("kiwi")
    with pytest.raises(UnknownNameError):
        fruits.check("kiwi")


def test_a_registry_raises_its_own_error_class() -> None:
    class UnknownColour(UnknownNameError, KeyError):
        pass

    registry: Registry[int] = Registry("colour", error=UnknownColour)
    with pytest.raises(KeyError):
        registry.get("teal")
    with pytest.raises(ValueError):  # still an UnknownNameError
        registry.get("teal")


def test_remove_unregisters_name_aliases_and_metadata(fruits: Registry[int]) -> None:
    assert fruits.remove("poire") == 2  # by an alias too
    assert fruits.names() == ("apple",) and fruits.aliases() == ()
    for name in ("pear", "poire", "birne"):
        assert name not in fruits
    with pytest.raises(UnknownNameError, match="unknown fruit 'pear'"):
        fruits.remove("pear")
    fruits.add("pear", 5, aliases=("poire",))  # the name and alias are free again
    assert fruits.get("poire") == 5


def test_temporarily_registers_for_a_block_only(fruits: Registry[int]) -> None:
    with fruits.temporarily("plum", 7, aliases=("prune",), stone=True) as entry:
        assert entry == 7
        assert fruits.get("prune") == 7 and fruits.meta("plum") == {"stone": True}
    assert "plum" not in fruits and "prune" not in fruits
    # a replaced entry comes back, with its aliases and metadata
    with fruits.temporarily("pear", 99, replace=True):
        assert fruits.get("pear") == 99 and "poire" not in fruits
    assert fruits.get("poire") == 2 and fruits.aliases("pear") == ("poire", "birne")
    # a duplicate is refused as add() refuses it, and nothing is left behind
    with pytest.raises(ValueError, match="already registered"), fruits.temporarily("apple", 0):
        pass
    assert fruits.get("apple") == 1


def test_scoped_undoes_additions_and_removals_even_on_error(fruits: Registry[int]) -> None:
    before = (fruits.items(), fruits.aliases(), fruits.meta("apple"))
    with pytest.raises(RuntimeError), fruits.scoped() as registry:
        assert registry is fruits

        fruits.register("fig", aliases=("figue",))(3)
        fruits.remove("apple")
        fruits.add("pear", 0, replace=True)
        raise RuntimeError("the block fails")
    assert (fruits.items(), fruits.aliases(), fruits.meta("apple")) == before
    assert "figue" not in fruits and fruits.get("birne") == 2


def test_the_plug_in_registries_use_the_built_in_aliases() -> None:
    from vlthinker.evaluation.adapters import BENCHMARKS, get_benchmark
    from vlthinker.rewards import ANSWER_TYPES, canonical_answer_type

    assert canonical_answer_type("Spatial_Grounding") == "grounding"
    assert ANSWER_TYPES.canonical("numerical") == "numeric"
    assert get_benchmark("Math-Vision").name == "mathvision"
    assert BENCHMARKS.canonical("math-vision") == "mathvision"
    assert set(BENCHMARKS.aliases("refcoco+")) >= {"refcoco_plus"}


def test_reference_problem_types_are_read_from_the_answer_type_registry() -> None:
    from pathlib import Path

    from vlthinker.data import REFERENCE_PROBLEM_TYPES
    from vlthinker.data.readers import to_record
    from vlthinker.rewards import ANSWER_TYPES, score

    # the reference data's spellings and the options they imply come from the registrations
    assert REFERENCE_PROBLEM_TYPES["OCR"] == ("ocr", {"metric": "wer"})
    assert REFERENCE_PROBLEM_TYPES["spatial grounding"] == ("grounding", {"box_format": "qwen1000"})
    assert REFERENCE_PROBLEM_TYPES["regression"] == ("chart", {"metric": "mra"})
    assert REFERENCE_PROBLEM_TYPES["grounding"] == ("grounding", {})
    assert "free-form" not in REFERENCE_PROBLEM_TYPES
    # scoring with the reference spelling reads the boxes as the data layer does (0–1000 here)
    answer = "<answer>[0, 0, 500, 500]</answer>"
    meta = {"image_size": [200, 200], "answer_box_format": "absolute"}
    assert score(answer, [0, 0, 100, 100], "spatial grounding", **meta)["accuracy"] == 1.0
    assert score(answer, [0, 0, 100, 100], "grounding", **meta)["accuracy"] < 0.1  # pixels

    def yes_no(pred: str, answer: object, meta: object) -> float:
        return float(pred.strip().lower() == str(answer).lower())

    raw = {"problem": "Is it red?", "problem_type": "Yes/No", "task_type": "x", "answer": "yes"}
    with ANSWER_TYPES.temporarily(
        "yes_no", yes_no, aliases=("yes/no",), alias_defaults={"yes/no": {"strict": True}}
    ):
        record = to_record(raw, "mem#0", Path("."))
        assert (record.answer_type, record.meta) == ("yes_no", {"strict": True})
        assert "yes/no" in REFERENCE_PROBLEM_TYPES
    assert "yes/no" not in REFERENCE_PROBLEM_TYPES  # gone with the registration
