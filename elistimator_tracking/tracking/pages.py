"""Every page of an MLflow search, not the first one only.

MLflow's searches answer one page (1,000 experiments, 100 logged models, ...) and a token for
the next. A store a team has used for a while holds more than a page, so a lookup that reads
one page misses what is on the others: a run found again by its key, a run-id prefix, the
checkpoints of a long training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def every_page(search: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """What ``search(*args, **kwargs)`` finds on all its pages, in its order (``search`` is a
    client's ``search_*`` method, which answers a page with a ``token`` for the next)."""
    token = None
    while True:
        page = search(*args, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def experiment_ids(client: Any, **kwargs: Any) -> list[str]:
    """The ids of every experiment of the store (``kwargs``: ``search_experiments``'s, such as ``view_type``)."""
    return [experiment.experiment_id for experiment in every_page(client.search_experiments, **kwargs)]
