"""A labelled set for measuring the privacy auditor: strings that identify someone (people's
names, e-mail addresses, street addresses) and generic phrases of the kind a value taxonomy
publishes. Built here from parts, so nothing in it is a real person's data."""

from __future__ import annotations

_FIRST = ["Maria", "James", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Liam", "Chen", "Sofia"]
_LAST = ["Kowalski", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Haddad", "Brennan", "Silva"]
_STREETS = ["Maple Street", "Rue Lepic", "Elm Road", "Calle Mayor", "Baker Avenue"]

IDENTIFYING = (
    [f"advice for {_FIRST[i]} {_LAST[i % len(_LAST)]} about her divorce" for i in range(10)]
    + [f"{_FIRST[i].lower()}.{_LAST[i % len(_LAST)].lower()}@example.com" for i in range(10)]
    + [f"{10 + 7 * i} {_STREETS[i % len(_STREETS)]}, apartment {i + 2}" for i in range(10)]
    + [f"complaint letter from {_FIRST[i]} {_LAST[(i + 3) % len(_LAST)]}" for i in range(10)]
)
GENERIC = [
    "honesty",
    "user autonomy",
    "emotional support",
    "harm prevention",
    "professionalism",
    "clarity",
    "healthy boundaries",
    "mutual respect",
    "historical accuracy",
    "efficiency",
    "drafting workplace emails",
    "debugging data pipelines",
    "relationship advice",
    "career planning",
    "creative writing feedback",
    "explaining scientific concepts",
    "ethical boundaries",
    "balanced perspective",
    "patient education",
    "epistemic humility",
    "support for grieving users",
    "budget planning for households",
    "learning a language",
    "parenting questions",
    "fitness routines",
    "cooking substitutions",
    "travel planning",
    "software architecture choices",
    "academic integrity",
    "transparency about limitations",
    "care for animal welfare",
    "respect for cultural traditions",
    "conflict resolution at work",
    "study habits",
    "mental health resources",
    "privacy protection",
    "consumer rights",
    "environmental sustainability",
    "fair treatment of employees",
    "scientific rigour",
]
LABELLED: list[tuple[str, bool]] = [(s, True) for s in IDENTIFYING] + [(s, False) for s in GENERIC]
