"""Accounts in Chromium: an anonymous visit lands on the login page and comes back after
logging in; the account page creates an API token (shown once) and revokes it; logging out
ends the login. No page runs an inline script (the Content-Security-Policy would block it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, screenshot

pytestmark = [pytest.mark.e2e]


def test_login_account_token_and_logout(live_server: LiveServer, browser: Any) -> None:
    base = live_server.url
    experiment = live_server.api("POST", "/api/experiments", json={"name": "Accounts e2e"})
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    try:
        page.goto(f"{base}/experiments/{experiment['id']}")
        assert "/login?next=" in page.url
        screenshot(page, "20-login")
        page.fill("#username", live_server.username)
        page.fill("#password", "not the password")
        page.click("#login-submit")
        assert "Wrong username or password" in page.inner_text("#login-error")
        errors.clear()  # Chromium logs the refused login's 401 answer; nothing else may fail
        page.fill("#password", live_server.password)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/experiments/{experiment['id']}")
        assert page.inner_text("#experiment-title") == "Accounts e2e"

        page.goto(f"{base}/account")
        page.fill("input[name=name]", "analysis laptop")
        page.click("text=Create token")
        token = page.inner_text("#new-token").strip()
        assert token.startswith("syl_")
        screenshot(page, "21-account-token")
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/api/me", headers=auth).json()["username"] == live_server.username
        page.goto(f"{base}/account")  # the token is not shown again
        assert page.locator("#new-token").count() == 0
        page.locator("#tokens tr", has_text="analysis laptop").locator("text=Revoke").click()
        page.wait_for_url(f"{base}/account")
        assert httpx.get(f"{base}/api/me", headers=auth).status_code == 401

        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/")
        assert "/login" in page.url
        assert errors == [], errors
    finally:
        context.close()
