"""Access control over every route of the OpenAPI document and every page, against the real
database (SQLite and PostgreSQL): anonymous requests are refused, another lab's ids answer 404
with none of the data, a viewer can read but every change is refused, API tokens work until
revoked, expired or revoked logins are refused, CSRF is enforced, security headers are sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.conftest import FAKE_MP4, add_user, log_in, new_client

ID_PARAM = re.compile(r"\{(\w+)\}")
CHANGES = ("POST", "PUT", "PATCH", "DELETE")
PUBLIC_API = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
SECRET = "Secret lab 7f3a"  # the name of alice's experiment: must never reach bob


@dataclass
class World:
    """Alice's lab (alice owner, carol viewer) with one of everything, and bob's lab."""

    alice: Any
    bob: Any
    carol: Any
    anonymous: Any
    ids: dict[str, str]


@pytest.fixture
def world(make_app, backend) -> World:
    from app.annotations.models import Annotation
    from app.jobs.models import Job
    from app.syllables.models import Syllable, SyllableModel

    alice = make_app(backend)
    app = alice.app
    experiment = alice.post("/api/experiments", json={"name": SECRET}).json()
    eid = experiment["id"]
    session = alice.post(
        f"/api/experiments/{eid}/sessions",
        files={"file": ("m1.mp4", FAKE_MP4 + b"not a video" * 10)},
        data={"subject": "m1", "cohort": "saline"},
    ).json()
    upload = alice.post(
        f"/api/experiments/{eid}/uploads", json={"filename": "m2.mp4", "size": 10}
    ).json()
    token = alice.post("/api/tokens", json={"name": "laptop"}).json()
    with app.state.session_factory() as db:
        model = SyllableModel(experiment_id=eid, version=1, status="ready", states=2)
        db.add(model)
        db.flush()
        syllable = Syllable(model_id=model.id, index=0, name="rear")
        db.add(syllable)
        db.flush()
        job_id = db.query(Job.id).filter(Job.session_id == session["id"]).first()[0]
        annotation = Annotation(
            session_id=session["id"], filename="a.csv", format="frames", behaviours=["walk"],
            labels=b"\x00\x00", frame_count=1, scored_frames=1, notes=[], source=b"frame,b",
        )  # fmt: skip
        db.add(annotation)
        db.flush()
        ids = {
            "experiment_id": eid,
            "session_id": session["id"],
            "subject_id": alice.get(f"/api/experiments/{eid}/subjects").json()[0]["id"],
            "job_id": job_id,
            "model_id": model.id,
            "syllable_id": syllable.id,
            "upload_id": upload["id"],
            "number": 0,
            "group_id": experiment["group_id"],
            "token_id": token["id"],
            "annotation_id": annotation.id,
        }
        db.commit()
    add_user(app, "bob")
    bob = log_in(new_client(app), "bob")
    add_user(app, "carol", group="carol's own")
    with app.state.session_factory() as db:
        from app.accounts import service

        group = service.get_group_or_raise(db, group_id=experiment["group_id"])
        carol_user = service.get_user(db, username="carol")
        assert carol_user is not None
        service.set_member(db, group=group, user=carol_user, role="viewer")
        ids["user_id"] = carol_user.id
        db.commit()
    carol = log_in(new_client(app), "carol")
    return World(alice, bob, carol, new_client(app), {k: str(v) for k, v in ids.items()})


def api_routes(client: Any) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    return [(m.upper(), path) for path, ops in doc["paths"].items() for m in ops]


def _all_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found += [(method, prefix + route.path) for method in route.methods]
        elif hasattr(route, "original_router"):  # FastAPI's included router
            found += _all_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )
    return found


def page_routes(client: Any) -> list[tuple[str, str]]:
    """Every route that is not in the OpenAPI document: the HTML pages (and their forms)."""
    documented = set(api_routes(client))
    return [
        (method, path)
        for method, path in _all_routes(client.app.routes)
        if (method, path) not in documented
        and (method, path) not in PUBLIC_API  # e.g. /metrics, left out of the document
        and not path.startswith(("/static/", "/login", "/logout"))
    ]


def url_for(path: str, ids: dict[str, str]) -> str:
    return ID_PARAM.sub(lambda m: ids[m.group(1)], path)


def call(client: Any, method: str, url: str) -> Any:
    kwargs: dict[str, Any] = {"follow_redirects": False}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = {}
    return client.request(method, url, **kwargs)


def test_anonymous_gets_401_from_every_api_route_and_a_login_redirect_from_every_page(
    world: World,
) -> None:
    checked = 0
    for method, path in api_routes(world.alice):
        if (method, path) in PUBLIC_API:
            continue
        response = call(world.anonymous, method, url_for(path, world.ids))
        assert response.status_code == 401, (method, path, response.text)
        assert SECRET not in response.text
        checked += 1
    assert checked >= 40
    pages = page_routes(world.alice)
    assert len(pages) >= 8
    for method, path in pages:
        response = call(world.anonymous, method, url_for(path, world.ids))
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/login?next=/"), (method, path)
        assert SECRET not in response.text


def test_another_lab_gets_404_or_403_and_no_data_from_every_route(world: World) -> None:
    for method, path in api_routes(world.alice) + page_routes(world.alice):
        if not ID_PARAM.search(path) or (method, path) in PUBLIC_API:
            continue
        response = call(world.bob, method, url_for(path, world.ids))
        # Users are an administrator's business (403); everything of a lab is invisible (404).
        expected = 403 if path.startswith("/api/users/") else 404
        assert response.status_code == expected, (method, path, response.text)
        assert SECRET not in response.text and "rear" not in response.text, (method, path)
    assert SECRET not in world.bob.get("/").text
    assert world.bob.get("/api/experiments").json() == []
    assert world.alice.get(f"/api/experiments/{world.ids['experiment_id']}").status_code == 200


def test_a_viewer_reads_but_every_change_is_403(world: World) -> None:
    eid = world.ids["experiment_id"]
    assert [e["name"] for e in world.carol.get("/api/experiments").json()] == [SECRET]
    assert world.carol.get(f"/experiments/{eid}").status_code == 200
    assert world.carol.get(f"/api/sessions/{world.ids['session_id']}").status_code == 200
    assert world.carol.get(f"/api/experiments/{eid}/export.zip").status_code == 200
    changes = 0
    for method, path in api_routes(world.alice):
        if method not in CHANGES or not ID_PARAM.search(path):
            continue
        response = call(world.carol, method, url_for(path, world.ids))
        # Alice's API token is not carol's to revoke: that one is invisible to her.
        expected = 404 if path == "/api/tokens/{token_id}" else 403
        assert response.status_code == expected, (method, path, response.text)
        changes += 1
    assert changes >= 15
    r = world.carol.post(
        "/api/experiments", json={"name": "x", "group_id": int(world.ids["group_id"])}
    )
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    assert world.alice.get(f"/api/experiments/{eid}").json()["name"] == SECRET


def test_new_experiments_go_into_one_of_the_users_groups(world: World) -> None:
    mine = world.bob.post("/api/experiments", json={"name": "bob's"}).json()
    groups = world.bob.get("/api/groups").json()
    assert [g["id"] for g in groups] == [mine["group_id"]] and groups[0]["role"] == "owner"
    r = world.bob.post(
        "/api/experiments", json={"name": "x", "group_id": int(world.ids["group_id"])}
    )
    assert r.status_code == 404
    assert [e["name"] for e in world.alice.get("/api/experiments").json()] == [SECRET]


def test_group_owner_adds_an_editor_who_then_can_change(world: World) -> None:
    gid = world.ids["group_id"]
    r = world.alice.put(f"/api/groups/{gid}/members", json={"username": "bob", "role": "editor"})
    assert r.status_code == 200, r.text
    eid = world.ids["experiment_id"]
    assert world.bob.patch(f"/api/experiments/{eid}", json={"description": "b"}).status_code == 200
    assert (
        world.bob.put(
            f"/api/groups/{gid}/members", json={"username": "bob", "role": "owner"}
        ).status_code
        == 403
    )
    r = world.alice.put(f"/api/groups/{gid}/members", json={"username": "alice", "role": "viewer"})
    assert r.status_code == 409 and "owner" in r.json()["detail"]


def test_api_tokens_work_without_csrf_and_stop_once_revoked(world: World) -> None:
    created = world.bob.post("/api/tokens", json={"name": "script"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("syl_")
    script = new_client(world.alice.app)
    script.headers["Authorization"] = f"Bearer {token}"
    assert script.get("/api/me").json()["username"] == "bob"
    assert script.post("/api/experiments", json={"name": "scripted"}).status_code == 201
    listed = world.bob.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]
    assert token not in world.bob.get("/api/tokens").text
    assert world.bob.delete(f"/api/tokens/{created.json()['id']}").status_code == 200
    r = script.get("/api/experiments")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    script.headers["Authorization"] = "Bearer syl_guessed"
    assert script.get("/api/experiments").status_code == 401


def test_expired_revoked_and_logged_out_sessions_are_refused(world: World) -> None:
    from app.accounts.models import LoginSession
    from app.core.db import utcnow

    app = world.alice.app
    assert world.bob.get("/api/me").status_code == 200

    def age(**delta: float) -> None:
        with app.state.session_factory() as db:
            for login in db.query(LoginSession).all():
                login.last_seen_at = utcnow() - timedelta(**delta)
                login.created_at = min(login.created_at, login.last_seen_at)
            db.commit()

    age(hours=13)  # idle longer than the 12 h default
    assert world.bob.get("/api/me").status_code == 401
    assert world.bob.get("/", follow_redirects=False).status_code == 303
    log_in(world.bob, "bob")
    with app.state.session_factory() as db:
        for login in db.query(LoginSession).all():
            login.created_at = utcnow() - timedelta(days=8)  # older than 7 days, though active
        db.commit()
    assert world.bob.get("/api/me").status_code == 401
    log_in(world.bob, "bob")
    other = log_in(new_client(app), "bob")
    r = world.bob.post(
        "/api/me/password",
        json={
            "current_password": "correct horse battery staple",
            "new_password": "a new long one!",
        },
    )
    assert r.status_code == 204, r.text
    assert world.bob.get("/api/me").status_code == 200  # this login stays
    assert other.get("/api/me").status_code == 401  # other logins end
    assert world.bob.post("/logout", follow_redirects=False).status_code == 303
    assert world.bob.get("/api/me").status_code == 401


def test_disabled_users_and_admin_logout_end_access(world: World) -> None:
    users = {u["username"]: u["id"] for u in world.alice.get("/api/users").json()}
    assert world.alice.post(f"/api/users/{users['bob']}/logout").status_code == 204
    assert world.bob.get("/api/me").status_code == 401
    log_in(world.bob, "bob")
    assert (
        world.alice.patch(f"/api/users/{users['bob']}", json={"is_active": False}).status_code
        == 200
    )
    assert world.bob.get("/api/me").status_code == 401
    r = world.anonymous.post(
        "/login", data={"username": "bob", "password": "correct horse battery staple"}
    )
    assert r.status_code == 401


def test_csrf_missing_or_wrong_is_403_for_cookie_logins(world: World) -> None:
    client = world.bob
    good = client.headers.pop("X-CSRF-Token")
    r = client.post("/api/experiments", json={"name": "x"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post("/api/experiments", json={"name": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert client.post("/account/tokens", data={"name": "t"}).status_code == 403
    assert client.post("/account/tokens", data={"name": "t", "csrf_token": "no"}).status_code == 403
    assert client.post("/account/tokens", data={"name": "t", "csrf_token": good}).status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 403
    r = client.post("/api/experiments", json={"name": "x"}, headers={"X-CSRF-Token": good})
    assert r.status_code == 201
    # Another user's token is no good either.
    other = world.alice.headers["X-CSRF-Token"]
    assert (
        client.post(
            "/api/experiments", json={"name": "y"}, headers={"X-CSRF-Token": other}
        ).status_code
        == 403
    )


def test_security_headers_on_every_kind_of_response(world: World) -> None:
    for client, url in (
        (world.alice, "/"),
        (world.alice, "/api/experiments"),
        (world.alice, "/api/experiments/987654"),
        (world.anonymous, "/api/experiments"),
        (world.anonymous, "/login"),
        (world.anonymous, "/static/js/common.js"),
        (world.anonymous, "/healthz"),
        (world.alice, f"/api/experiments/{world.ids['experiment_id']}/export.zip"),
    ):
        headers = client.get(url, follow_redirects=False).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert headers["x-content-type-options"] == "nosniff", url
        assert headers["referrer-policy"] == "same-origin", url


def test_login_page_cookie_flags_and_safe_redirects(world: World) -> None:
    client = world.anonymous
    assert 'name="password"' in client.get("/login").text
    r = client.post("/login", data={"username": "bob", "password": "wrong"})
    assert r.status_code == 401 and "Wrong username or password" in r.text
    r = client.post(
        "/login",
        data={
            "username": "bob",
            "password": "correct horse battery staple",
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "syllabary_session=" in cookie
    # A tampered cookie is no login.
    value = client.cookies.get("syllabary_session")
    client.cookies.set("syllabary_session", value[:-2] + "xx")
    assert client.get("/api/me").status_code == 401


def test_admin_creates_users_on_the_page_and_by_api(world: World) -> None:
    page = world.alice.get("/admin/users")
    assert page.status_code == 200 and "New user" in page.text
    assert world.bob.get("/admin/users").status_code == 404
    csrf = world.alice.headers["X-CSRF-Token"]
    r = world.alice.post(
        "/admin/users",
        data={
            "username": "dave",
            "password": "long enough pw",
            "group": "Neuro lab",
            "role": "editor",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 200 and "Created dave" in r.text
    r = world.alice.post("/api/users", json={"username": "erin", "password": "short"})
    assert r.status_code == 422 and "at least 10" in r.json()["detail"]
    r = world.alice.post("/api/users", json={"username": "erin", "password": "long enough pw"})
    assert r.status_code == 201
    assert (
        world.bob.post(
            "/api/users", json={"username": "x", "password": "long enough pw"}
        ).status_code
        == 403
    )
    dave = log_in(new_client(world.alice.app), "dave", "long enough pw")
    assert [g["name"] for g in dave.get("/api/groups").json()] == ["Neuro lab"]
