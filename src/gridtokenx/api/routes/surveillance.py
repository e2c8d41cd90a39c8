"""The ERC's surveillance alerts, as the node's follower raised them (docs/surveillance.md).

Alerts are held in memory: they are a function of the chain and the settings, so a node
rebuilds them from its store when it starts. Newest interval first, filtered, paged by
offset (the list only grows at its head as intervals settle, so a client re-reads from 0
for news, or subscribes to the `surveillance` WebSocket topic)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import SurveillanceDep
from gridtokenx.api.errors import invalid
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import Limit
from gridtokenx.surveillance import Detector, select

router = APIRouter(tags=["surveillance"], responses=ERRORS)
Unix = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


@router.get("/surveillance/alerts", response_model=models.SurveillanceAlerts)
async def surveillance_alerts(
    follower: SurveillanceDep,
    detector: Annotated[Detector | None, Query(description="one detector")] = None,
    account: Annotated[str | None, Query(description="alerts naming this address")] = None,
    zone: Annotated[str | None, Query(pattern=r"^[A-Z]{2,8}$")] = None,
    interval_from: Unix = None,
    interval_to: Unix = None,
    min_score: Annotated[int, Query(ge=0, le=10_000)] = 0,
    limit: Limit = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    """Alerts matching every filter given, newest interval first."""
    if account is not None:
        views.address(account)  # a malformed address is refused, not silently unmatched
    if interval_from is not None and interval_to is not None and interval_from > interval_to:
        raise invalid("interval_from is after interval_to")
    found = select(follower.alerts, detector=detector, account=account, zone=zone,
                   interval_from=interval_from, interval_to=interval_to,
                   min_score=min_score)  # fmt: skip
    return {
        "followed_from": follower.from_height,
        "height": follower.height,
        "settings_digest": follower.engine.settings.digest,
        "total": len(found),
        "items": [views.alert(a) for a in found[offset : offset + limit]],
    }
