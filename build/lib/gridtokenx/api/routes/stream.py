"""The WebSocket endpoint: JSON messages both ways (see docs/api.md for the protocol)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from fastapi import APIRouter, WebSocket

from gridtokenx.api.deps import HubDep
from gridtokenx.api.hub import LAGGED, Client, Hub

SEND_TIMEOUT: Final = 5.0  # seconds a client may take to accept one message
LAGGED_CLOSE: Final = 4008  # application close code: the client fell behind
MAX_MESSAGE: Final = 4096  # characters in one client message


router = APIRouter()


@router.websocket("/ws")
async def stream(socket: WebSocket, hub: HubDep) -> None:
    await socket.accept()
    wake = asyncio.Event()
    client = hub.join(wake)
    sender = asyncio.create_task(_pump(socket, hub, client, wake))
    receiver = asyncio.create_task(_receive(socket, hub, client))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.leave(client)
        for task in (sender, receiver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _pump(socket: WebSocket, hub: Hub, client: Client, wake: asyncio.Event) -> None:
    """Send queued messages; stop after `lagged`, or when the client stalls."""
    while True:
        await wake.wait()
        wake.clear()
        for message in hub.take(client):
            await asyncio.wait_for(socket.send_json(message), SEND_TIMEOUT)
            if message is LAGGED:
                await asyncio.wait_for(socket.close(LAGGED_CLOSE), SEND_TIMEOUT)
                return


async def _receive(socket: WebSocket, hub: Hub, client: Client) -> None:
    """Apply the client's requests until it disconnects; bad ones are answered."""
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None or len(text) > MAX_MESSAGE:
            why = f"send JSON text messages of at most {MAX_MESSAGE} characters"
            hub.deliver(client, {"type": "error", "code": "INVALID_REQUEST", "message": why})
            continue
        hub.handle(client, text)
