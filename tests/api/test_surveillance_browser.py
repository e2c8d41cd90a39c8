"""The dashboard's ERC surveillance panel in Debian's chromium: open before the interval
settles, it shows the wash-trading alert as soon as the node's follower raises it (pushed
over the WebSocket), with the accounts and the evidence linked to the explorer."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.api.test_api_harness import LocalNode, text
from tests.api.test_api_surveillance import circle, settle

pytestmark = [pytest.mark.browser, pytest.mark.process]
WAIT_MS = 30_000


def test_the_panel_shows_a_new_alert_live_with_its_evidence(
    browser: Browser, tmp_path: Path
) -> None:
    with LocalNode(tmp_path / "data") as node, node.client() as api:
        found = circle(node, api)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{node.url}/?zone=BKK&interval={found['start']}")
        page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
        page.wait_for_selector("body[data-feed='live']", timeout=WAIT_MS)
        assert page.locator("#alerts-empty").is_visible()
        settle(node, api, found["start"])
        row = page.locator('#alerts tr[data-detector="wash_trading"]')
        row.wait_for(timeout=WAIT_MS)
        shown = row.inner_text()
        assert "wash trading" in shown and "100 %" in shown
        assert "2 trades (10000 Wh) went round 2 linked accounts" in shown
        links = [row.locator("a").nth(i).get_attribute("href") for i in range(4)]
        assert f"#/address/{text(found['a'])}" in links or f"#/address/{text(found['b'])}" in links
        assert any(h and h.startswith("#/tx/") for h in links)
        assert page.locator("#alerts-empty").is_hidden()
        assert "alerts, heights 1\u2013" in page.inner_text("#surveillance-title")
        assert errors == []
