"""Recipe parsing: every error names the key, unknown keys suggest, overrides behave like the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixer import recipe
from mixer.errors import RecipeError

BASE = """
name = "r"
seed = 1
total = 1000
[sources.alpha]
path = "data/a.jsonl"
weight = 1
"""


def load_text(tmp_path: Path, text: str, overrides=None) -> recipe.Recipe:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return recipe.load(path, overrides)


def test_valid_recipe_resolves_paths_relative_to_the_recipe_file(tmp_path: Path) -> None:
    r = load_text(tmp_path, BASE)
    assert r.sources[0].path == str((tmp_path / "data" / "a.jsonl").resolve())
    assert r.unit == "tokens" and r.tokenizer == "cl100k_base" and r.sources[0].max_epochs == 1.0


def test_unknown_top_level_key_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"totl: unknown key \(did you mean 'total'\?\)"):
        load_text(tmp_path, BASE + "\n", {"totl": 5})


def test_unknown_source_key_names_the_key_path(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"sources\.alpha\.wieght: unknown key \(did you mean 'weight'\?\)"):
        load_text(tmp_path, BASE.replace("weight = 1", "wieght = 1"))


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"r\.toml: TOML syntax error: .*line 3, column"):
        load_text(tmp_path, 'name = "x"\nseed = 1\ntotal = = 3\n')


def test_weight_together_with_tokens_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"sources\.alpha: give only one of weight, tokens, examples"):
        load_text(tmp_path, BASE + "tokens = 50\n")


def test_negative_weight_is_rejected_with_the_expected_range(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"sources\.alpha\.weight: expected a number >= 0, got -1"):
        load_text(tmp_path, BASE.replace("weight = 1", "weight = -1"))


def test_all_zero_weights_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="all weights are zero"):
        load_text(tmp_path, BASE.replace("weight = 1", "weight = 0"))


def test_weighted_sources_need_a_total(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="total: missing"):
        load_text(tmp_path, BASE.replace("total = 1000\n", ""))


def test_bad_unit_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="unit: expected one of tokens, examples, got 'token'"):
        load_text(tmp_path, 'unit = "token"\n' + BASE)


def test_set_overrides_parse_values_as_toml() -> None:
    assert recipe.parse_set("sources.a.weight=0.25") == ("sources.a.weight", 0.25)
    assert recipe.parse_set("total=1e6") == ("total", 1e6)
    assert recipe.parse_set("rebalance=true") == ("rebalance", True)
    assert recipe.parse_set("name=plain words") == ("name", "plain words")


def test_set_without_equals_is_a_usage_error() -> None:
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        recipe.parse_set("total")


def test_set_overrides_a_source_key_and_is_validated(tmp_path: Path) -> None:
    r = load_text(tmp_path, BASE, ["sources.alpha.weight=0.5", "seed=9"])
    assert r.sources[0].weight == 0.5 and r.seed == 9
    with pytest.raises(RecipeError, match="sources.alpha.weight: expected a number"):
        load_text(tmp_path, BASE, ["sources.alpha.weight=lots"])


def test_set_on_a_misspelled_source_suggests_the_real_one(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"no source 'alpah' \(did you mean 'alpha'\?\)"):
        load_text(tmp_path, BASE, ["sources.alpah.weight=2"])


def test_set_path_is_relative_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = load_text(tmp_path, BASE, ["sources.alpha.path=elsewhere/b.jsonl"])
    assert r.sources[0].path == str((tmp_path / "elsewhere" / "b.jsonl").resolve())


def test_recipe_hash_changes_with_any_setting(tmp_path: Path) -> None:
    a = load_text(tmp_path, BASE)
    b = load_text(tmp_path, BASE, ["seed=2"])
    assert a.sha256 != b.sha256 and a.sha256 == load_text(tmp_path, BASE).sha256


def test_validation_fraction_must_be_below_one(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"validation: expected a fraction in \[0, 1\)"):
        load_text(tmp_path, "validation = 1.0\n" + BASE)
