"""Generated tool specs that read like real APIs, from composable parts.

A spec is a *domain* (inventory, clinic scheduling, fleet tracking, ...), one of its
*resources* (with the fields such a record has: typed, with units, formats and enums), and a
*verb* whose parameter pattern real APIs share (get by id, list with filters and pagination,
create with required fields, update, delete, search, export, schedule, assign, cancel,
approve, count). Descriptions are written the way real specs write them ("Lists the purchase
orders of a supplier, newest first. Results are paginated."). Each draw picks which optional
fields and filters appear and how the description is phrased, so one seed gives tens of
thousands of distinct specs, all valid JSON Schema (tested), deterministic in the seed.
"""

from __future__ import annotations

import random
from typing import Any

# field -> (JSON Schema, description); "{r}" is the resource's readable name
Field = tuple[dict[str, Any], str]

_CURRENCY = {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY", "CAD", "AUD"]}
_STATUS = {"type": "string", "enum": ["active", "inactive", "pending", "archived"]}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}

FIELDS: dict[str, Field] = {
    "name": ({"type": "string"}, "Display name of the {r}."),
    "title": ({"type": "string"}, "Title of the {r}."),
    "description": ({"type": "string"}, "Free-text description of the {r}."),
    "notes": ({"type": "string"}, "Internal notes attached to the {r}."),
    "status": (_STATUS, "Lifecycle status of the {r}."),
    "quantity": ({"type": "integer", "minimum": 0}, "Number of units."),
    "unit_price": ({"type": "number", "minimum": 0}, "Price per unit in the given currency."),
    "currency": (_CURRENCY, "ISO 4217 currency code."),
    "weight_kg": ({"type": "number", "minimum": 0}, "Weight in kilograms."),
    "sku": ({"type": "string"}, "Stock keeping unit code."),
    "location": ({"type": "string"}, "Site or address where the {r} is located."),
    "latitude": ({"type": "number", "minimum": -90, "maximum": 90}, "Latitude in decimal degrees."),
    "longitude": ({"type": "number", "minimum": -180, "maximum": 180}, "Longitude in decimal degrees."),
    "start_time": (_TIME, "Start time in ISO 8601 format."),
    "end_time": (_TIME, "End time in ISO 8601 format."),
    "due_date": (_DATE, "Due date (YYYY-MM-DD)."),
    "timezone": ({"type": "string"}, "IANA time zone name, e.g. Europe/Berlin."),
    "priority": ({"type": "string", "enum": ["low", "normal", "high", "urgent"]}, "Priority of the {r}."),
    "tags": ({"type": "array", "items": {"type": "string"}}, "Labels to attach to the {r}."),
    "email": ({"type": "string", "format": "email"}, "Contact email address."),
    "phone": ({"type": "string"}, "Contact phone number in E.164 format."),
    "capacity": ({"type": "integer", "minimum": 1}, "Maximum number of people or items the {r} holds."),
    "duration_minutes": ({"type": "integer", "minimum": 1}, "Duration in minutes."),
    "temperature_c": ({"type": "number"}, "Temperature in degrees Celsius."),
    "distance_km": ({"type": "number", "minimum": 0}, "Distance in kilometres."),
    "score": ({"type": "number", "minimum": 0, "maximum": 100}, "Score from 0 to 100."),
    "language": ({"type": "string"}, "BCP 47 language tag, e.g. en-US."),
    "url": ({"type": "string", "format": "uri"}, "Link to the {r}."),
    "is_public": ({"type": "boolean"}, "Whether the {r} is visible to everyone."),
    "category": ({"type": "string"}, "Category the {r} belongs to."),
}

#: domain -> resources: (snake name, readable name, plural, fields it has)
DOMAINS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "inventory": [("stock_item", "stock item", "stock items", ("name", "sku", "quantity", "unit_price", "currency", "location", "weight_kg", "category")),
                  ("warehouse", "warehouse", "warehouses", ("name", "location", "capacity", "status", "timezone")),
                  ("purchase_order", "purchase order", "purchase orders", ("quantity", "unit_price", "currency", "due_date", "status", "notes"))],
    "clinic": [("appointment", "appointment", "appointments", ("start_time", "duration_minutes", "location", "notes", "status")),
               ("practitioner", "practitioner", "practitioners", ("name", "email", "phone", "language", "status")),
               ("room", "examination room", "examination rooms", ("name", "capacity", "location", "status"))],
    "fleet": [("vehicle", "vehicle", "vehicles", ("name", "status", "location", "latitude", "longitude", "weight_kg")),
              ("trip", "trip", "trips", ("start_time", "end_time", "distance_km", "notes", "status")),
              ("driver", "driver", "drivers", ("name", "phone", "email", "status", "language"))],
    "events": [("venue", "venue", "venues", ("name", "location", "capacity", "url", "timezone")),
               ("ticket", "ticket", "tickets", ("unit_price", "currency", "quantity", "status", "category")),
               ("session", "session", "sessions", ("title", "start_time", "duration_minutes", "language", "is_public"))],
    "publishing": [("article", "article", "articles", ("title", "description", "language", "tags", "is_public", "status", "url")),
                   ("author", "author", "authors", ("name", "email", "language", "notes")),
                   ("comment", "comment", "comments", ("description", "status", "score"))],
    "support": [("ticket", "support ticket", "support tickets", ("title", "description", "priority", "status", "tags", "email")),
                ("macro", "reply macro", "reply macros", ("title", "description", "language", "category")),
                ("sla_policy", "SLA policy", "SLA policies", ("name", "duration_minutes", "priority", "status"))],
    "agriculture": [("field_plot", "field plot", "field plots", ("name", "location", "latitude", "longitude", "category", "notes")),
                    ("sensor", "soil sensor", "soil sensors", ("name", "temperature_c", "status", "location")),
                    ("harvest", "harvest record", "harvest records", ("weight_kg", "due_date", "category", "notes"))],
    "learning": [("course", "course", "courses", ("title", "description", "language", "capacity", "is_public", "start_time")),
                 ("assignment", "assignment", "assignments", ("title", "due_date", "score", "status", "description")),
                 ("learner", "learner", "learners", ("name", "email", "language", "status"))],
    "facilities": [("work_order", "work order", "work orders", ("title", "priority", "location", "due_date", "status", "notes")),
                   ("asset", "building asset", "building assets", ("name", "category", "location", "status", "url")),
                   ("meter_reading", "meter reading", "meter readings", ("temperature_c", "start_time", "notes"))],
    "recruiting": [("job_posting", "job posting", "job postings", ("title", "description", "location", "is_public", "status", "tags")),
                   ("candidate", "candidate", "candidates", ("name", "email", "phone", "score", "status", "notes")),
                   ("interview", "interview", "interviews", ("start_time", "duration_minutes", "location", "notes", "status"))],
    "marketing": [("campaign", "campaign", "campaigns", ("name", "start_time", "end_time", "status", "category", "tags")),
                  ("audience", "audience segment", "audience segments", ("name", "description", "language", "status")),
                  ("coupon", "coupon", "coupons", ("name", "unit_price", "currency", "due_date", "quantity", "status"))],
    "research": [("dataset", "dataset", "datasets", ("name", "description", "url", "is_public", "tags", "language")),
                 ("experiment", "experiment", "experiments", ("title", "start_time", "end_time", "status", "notes", "score")),
                 ("sample", "lab sample", "lab samples", ("name", "temperature_c", "location", "weight_kg", "status"))],
}

_GET = ("Retrieves a {r} by its identifier.", "Returns the details of a single {r}.", "Fetches one {r}, including {f}.",
        "Gets the current state of a {r}.")
_LIST = ("Lists {p}, newest first. Results are paginated.", "Returns the {p} that match the given filters.",
         "Lists {p} in the {d} account, optionally filtered by {f}.", "Pages through {p}, up to `limit` at a time.")
_CREATE = ("Creates a new {r}.", "Creates a {r} and returns its identifier.", "Registers a new {r} with the given {f}.",
           "Adds a {r} to the {d} workspace.")
_UPDATE = ("Updates fields of an existing {r}. Omitted fields are left unchanged.", "Changes the {f} of a {r}.",
           "Applies a partial update to a {r}.")
_DELETE = ("Deletes a {r}. This cannot be undone.", "Removes a {r} permanently.", "Archives or deletes a {r}.")
_SEARCH = ("Searches {p} by keyword.", "Full-text search over {p}, ranked by relevance.",
           "Finds {p} whose {f} matches the query.")
_EXPORT = ("Exports {p} to a file in the chosen format.", "Creates a downloadable export of {p} for a date range.")
_SCHEDULE = ("Schedules a {r} for a given time.", "Books a {r} at the requested start time.")
_ASSIGN = ("Assigns a {r} to a user.", "Sets the owner of a {r}.")
_CANCEL = ("Cancels a {r} and notifies the people involved.", "Cancels a pending {r}.")
_APPROVE = ("Approves or rejects a {r}.", "Records an approval decision for a {r}.")
_COUNT = ("Counts {p} that match the filters.", "Returns how many {p} exist, optionally filtered by {f}.")

VERBS: dict[str, tuple[str, ...]] = {"get": _GET, "list": _LIST, "create": _CREATE, "update": _UPDATE,
                                     "delete": _DELETE, "search": _SEARCH, "export": _EXPORT, "schedule": _SCHEDULE,
                                     "assign": _ASSIGN, "cancel": _CANCEL, "approve": _APPROVE, "count": _COUNT}
_NAME_STYLE = ("{v}_{r}", "{v}_{r}s", "{d}_{v}_{r}")


def _field(name: str, readable: str) -> dict[str, Any]:
    schema, desc = FIELDS[name]
    return {**schema, "description": desc.format(r=readable)}


def _spec(rnd: random.Random, domain: str, resource: tuple[str, str, str, tuple[str, ...]], verb: str) -> dict[str, Any]:
    snake, readable, plural, fields = resource
    ident = f"{snake}_id"
    props: dict[str, Any] = {}
    required: list[str] = []
    optional = list(fields)
    rnd.shuffle(optional)
    some = optional[: rnd.randint(1, min(4, len(optional)))]
    id_param = {"type": "string", "description": f"Unique identifier of the {readable}."}
    if verb in ("get", "update", "delete", "assign", "cancel", "approve"):
        props[ident] = id_param
        required.append(ident)
    if verb == "get" and rnd.random() < 0.4:
        props["include"] = {"type": "array", "items": {"type": "string", "enum": sorted(some)},
                            "description": "Related fields to expand in the response."}
    if verb in ("list", "count", "export"):
        for f in some[: rnd.randint(0, 3)]:
            props[f] = _field(f, readable)
        if verb == "list" and rnd.random() < 0.5:
            props["sort_by"] = {"type": "string", "enum": sorted({"created_at", "updated_at", *some[:2]}),
                                "description": "Field to sort by."}
            props["order"] = {"type": "string", "enum": ["asc", "desc"], "default": "desc",
                              "description": "Sort direction."}
        if verb == "list":
            props["limit"] = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20,
                              "description": "Maximum number of results to return."}
            if rnd.random() < 0.6:
                props["page_token"] = {"type": "string", "description": "Token from a previous call's next_page_token."}
        if verb == "export":
            props["format"] = {"type": "string", "enum": ["csv", "json", "xlsx"], "description": "File format."}
            props["start_date"] = {**_DATE, "description": "First day to include (YYYY-MM-DD)."}
            props["end_date"] = {**_DATE, "description": "Last day to include (YYYY-MM-DD)."}
            required.append("format")
    if verb == "search":
        props["query"] = {"type": "string", "description": "Search terms."}
        required.append("query")
        props["limit"] = {"type": "integer", "minimum": 1, "maximum": 50, "description": "Maximum number of results."}
    if verb in ("create", "update"):
        for f in some:
            props[f] = _field(f, readable)
        if verb == "create":
            required += some[: max(1, len(some) // 2)]
    if verb in ("create", "assign", "cancel", "schedule") and rnd.random() < 0.4:
        props["notify"] = {"type": "boolean", "default": True,
                           "description": "Send a notification to the people involved."}
    if verb in ("update", "delete") and rnd.random() < 0.3:
        props["dry_run"] = {"type": "boolean", "default": False,
                            "description": "Validate the request without applying it."}
    if verb == "schedule":
        props[ident] = id_param
        props["start_time"] = _field("start_time", readable)
        props["timezone"] = _field("timezone", readable)
        required += [ident, "start_time"]
    if verb == "assign":
        props["assignee_id"] = {"type": "string", "description": "Identifier of the user who will own the " + readable + "."}
        required.append("assignee_id")
    if verb in ("cancel", "delete") and rnd.random() < 0.5:
        props["reason"] = {"type": "string", "description": "Why the " + readable + " is being " +
                           ("cancelled." if verb == "cancel" else "deleted.")}
    if verb == "approve":
        props["decision"] = {"type": "string", "enum": ["approve", "reject"], "description": "The decision."}
        props["comment"] = {"type": "string", "description": "Optional note shown to the requester."}
        required.append("decision")
    words = {"r": readable, "p": plural, "d": domain.replace("_", " "),
             "f": " and ".join(f.replace("_", " ") for f in some[:2])}
    description = rnd.choice(VERBS[verb]).format(**words)
    if rnd.random() < 0.3:
        description += rnd.choice([" Requires the {d} admin scope.", " Rate limited to 60 requests per minute.",
                                   " Returns 404 if the {r} does not exist."]).format(**words)
    name = rnd.choice(_NAME_STYLE).format(v=verb, r=snake, d=domain)
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": props, "required": required}}


def _fits(resource: tuple[str, str, str, tuple[str, ...]], verb: str) -> bool:
    """Verbs real APIs offer for such a record: only timed records are scheduled or cancelled,
    only records with a status are approved."""
    fields = resource[3]
    if verb == "schedule":
        return "start_time" in fields
    if verb == "cancel":
        return "start_time" in fields or "due_date" in fields
    if verb == "approve":
        return "status" in fields and "start_time" not in fields
    return True


def generate(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` specs, deterministic in ``seed``. Names repeat across specs as they do across
    real APIs (``list_tickets`` in two domains); the tools transform keeps them unique per row."""
    rnd = random.Random(seed)
    combos = [(d, r, v) for d, resources in DOMAINS.items() for r in resources for v in VERBS if _fits(r, v)]
    return [_spec(rnd, *combos[rnd.randrange(len(combos))]) for _ in range(count)]
