"""What a route needs besides its request: the node it serves, the API's settings and the
WebSocket hub.

Routes are module-level functions (`routes/*.py`, one `APIRouter` per module) that name
these as typed parameters; `create_app` puts the node, settings and hub on `app.state`. So
a route is readable on its own, with no closure over a router factory, and a test can call
the app with another node. They are coroutines although they await nothing: FastAPI runs a
plain function dependency in a worker thread, a hand-off to a thread and back for each one
on every request (a quarter of the batch route's own CPU at saturation, by a profile)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gridtokenx.api.errors import not_found
from gridtokenx.api.hub import Hub
from gridtokenx.api.settings import ApiSettings
from gridtokenx.node.runtime import Node
from gridtokenx.surveillance.follower import Follower


async def node_of(connection: HTTPConnection) -> Node:
    node: Node = connection.app.state.node
    return node


async def settings_of(connection: HTTPConnection) -> ApiSettings:
    settings: ApiSettings = connection.app.state.settings
    return settings


async def hub_of(connection: HTTPConnection) -> Hub:
    hub: Hub = connection.app.state.hub
    return hub


async def surveillance_of(connection: HTTPConnection) -> Follower:
    """The node's surveillance follower; 404 when the operator turned it off."""
    follower: Follower | None = connection.app.state.surveillance
    if follower is None:
        raise not_found("surveillance (off on this node)")
    return follower


NodeDep = Annotated[Node, Depends(node_of)]
SurveillanceDep = Annotated[Follower, Depends(surveillance_of)]
SettingsDep = Annotated[ApiSettings, Depends(settings_of)]
HubDep = Annotated[Hub, Depends(hub_of)]
