"""The fixed list of theme tags the admin maintains (outcomes are tagged with them, and so are the
youth council's ideas): read here, changed by chalicelib.outcomes.put_tags (audited there)."""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from chalicelib.models import CONFIG_PARTITION, TAGS_KEY, TagList
from chalicelib.storage import storage_errors

DEFAULT_TAGS = ("schooladvies", "kinderopvang", "segregatie", "kansengelijkheid", "taal", "ouderbetrokkenheid",
                "lerarentekort", "huisvesting")


def get_tags() -> list[str]:
    with storage_errors():
        try:
            return list(TagList.get(CONFIG_PARTITION, TAGS_KEY).tags)
        except DoesNotExist:
            return list(DEFAULT_TAGS)
