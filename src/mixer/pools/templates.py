"""Safe template filling: ``{slot}`` placeholders from an allow-list, values from Faker.

No ``str.format``: only a brace-enclosed bare lower-case name on the allow-list is replaced.
Anything else, such as ``{0.__class__}``, ``{company.__init__}``, ``{city!r}`` or
``{date:%Y}``, has no attribute access, indexing or format spec applied and stays literal,
so a pool file can never reach into Python objects.

``{{slot}}`` is the escape for a literal ``{slot}``: a prompt may show a placeholder to the
model (``Reply with {{company}} where the name goes``) without Faker filling it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from faker import Faker
from faker.config import AVAILABLE_LOCALES

from mixer.errors import RecipeError

_FIRST_DAY = datetime.date(2023, 1, 1)
_LAST_DAY = datetime.date(2027, 12, 31)

SLOT = re.compile(r"\{\{([a-z_]+)\}\}|\{([a-z_]+)\}")  # escaped {{slot}} first, then {slot}

#: slot name -> how Faker fills it. The only names a template may use.
SLOTS: dict[str, Callable[[Faker], str]] = {
    "company": lambda f: f.company(),
    "person": lambda f: f.name(),
    "first_name": lambda f: f.first_name(),
    "city": lambda f: f.city(),
    "country": lambda f: f.country(),
    # Dates and times come from fixed ranges: Faker's defaults end at "now", which would make
    # the same seed give different prompts on different days.
    "date": lambda f: f.date_between_dates(_FIRST_DAY, _LAST_DAY).strftime("%B %d, %Y").replace(" 0", " "),
    "time": lambda f: f"{f.random_int(7, 20):02d}:{f.random_element([0, 15, 30, 45]):02d}",
    "job": lambda f: f.job(),
    "product": lambda f: f"{f.word().title()} {f.random_element(['Cloud', 'Pro', 'Hub', 'Desk', 'Assist', 'Studio', 'One', 'Works'])}",
    "email": lambda f: f.company_email(),
    "domain": lambda f: f.domain_name(),
    "year": lambda f: str(f.random_int(2019, 2027)),
}


def slots(template: str) -> list[str]:
    """The allow-listed slots a template uses, in order of appearance."""
    return [plain for escaped, plain in SLOT.findall(template) if plain in SLOTS]


def escaped(template: str) -> bool:
    """Whether the template holds a ``{{slot}}`` escape (so it must go through :func:`fill`)."""
    return any(esc in SLOTS for esc, _ in SLOT.findall(template))


def faker(locale: str, seed: int) -> Faker:
    """A Faker for ``locale`` seeded with ``seed`` (its own instance: no global state)."""
    if locale not in AVAILABLE_LOCALES:
        raise RecipeError(f"locale: unknown Faker locale {locale!r}; e.g. en_US, en_GB, de_DE, fr_FR, ja_JP")
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def fill(template: str, fake: Faker) -> str:
    """Replace allow-listed slots with Faker values and ``{{slot}}`` with ``{slot}``; leave every
    other brace text as it is."""

    def one(m: re.Match[str]) -> str:
        esc, plain = m.group(1), m.group(2)
        if esc is not None:
            return "{" + esc + "}" if esc in SLOTS else m.group(0)
        return SLOTS[plain](fake) if plain in SLOTS else m.group(0)

    return SLOT.sub(one, template)
