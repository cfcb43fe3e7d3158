"""mixer: data mixing and augmentation for LLM safety post-training.

    import mixer
    mixture = mixer.build("recipes/quickstart.toml", overrides={"total": 50_000})
    ds = mixture.to_datasets()          # datasets.DatasetDict for a trainer
    print(mixture.table())              # target vs realized shares
    mixture.write("out/quickstart")     # data/*.parquet + manifest.json
"""

from mixer import rng, schema, tokens, transforms
from mixer.pipeline import Mixture, build, build_all
from mixer.errors import DataError, MixerError, OutputError, RecipeError
from mixer.recipe import Recipe, load as load_recipe
from mixer.sources.read import read_source

__all__ = [
    "DataError", "MixerError", "Mixture", "OutputError", "Recipe", "RecipeError", "build", "build_all",
    "load_recipe", "read_source", "rng", "schema", "tokens", "transforms",
]
