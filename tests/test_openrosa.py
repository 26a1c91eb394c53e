"""A mission's OpenRosa server, against the OpenRosa Form List and Form Submission APIs,
with instances built from the XForm's own primary instance, as a client builds them."""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from conftest import make_app, serving_app
from temporalio.client import Client
from test_intake import open_election_day

from analysis.figures import figure_of, mission_analysis
from api.feed import EventFeed
from api.tokens import Role, TokenStore
from auditreport.export import ExportFormat, export_mission
from auditreport.model import build_report
from domain import text_sha256
from domain.alerts import AlertKind, mission_alerts
from domain.commands import CloseElectionDay, DraftStatement
from domain.values import Citation, CitedFigure, Phase
from eventstore.store import EventStore
from forms.collect import collect_settings, read_payload, settings_payload
from forms.library import STANDARD_SET, FormError, FormLibrary
from intake.visits import mission_visits
from worker import build_worker
from workflows.client import CommandRefused, Missions

FORMS = Path(__file__).with_name("forms")
XF = "{http://www.w3.org/2002/xforms}"
LIST = "{http://openrosa.org/xforms/xformsList}"
RESPONSE = "{http://openrosa.org/http/response}"
LIMIT = 1_048_576


@dataclass
class Server:
    base: str
    other_team: str
    mission_id: str
    station_id: str
    http: httpx.AsyncClient
    store: EventStore
    tokens: TokenStore
    url: str
    missions: Missions


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(client: Client, pool: object, database_url: str) -> AsyncIterator[Server]:
    store = EventStore(pool)  # type: ignore[arg-type]
    task_queue = f"eom-openrosa-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, store, task_queue):
        missions, mission_id, stations = await open_election_day(
            client, store, task_queue, stations=5, grace_minutes=60
        )
        state = await missions.state(mission_id)
        assert state.organisation is not None
        library = FormLibrary(store)
        await library.import_file(
            mission_id, state.organisation, FORMS / "station_check.md", actor="coordinator"
        )
        await library.import_file(
            mission_id, state.organisation, STANDARD_SET / "voting.md", actor="coordinator"
        )
        feed = EventFeed(store, database_url, fallback=2.0)
        app = make_app(missions, store.pool, feed, max_body_bytes=LIMIT)
        tokens = TokenStore(store.pool)
        token, _ = await tokens.create(
            role=Role.observer, name="Team one", mission_id=mission_id, team_id="team-1"
        )
        other, _ = await tokens.create(
            role=Role.observer, name="Team two", mission_id=mission_id, team_id="team-2"
        )
        async with serving_app(app) as url, httpx.AsyncClient(timeout=30) as http:
            yield Server(
                base=f"{url}/openrosa/key/{token}/missions/{mission_id}",
                other_team=f"{url}/openrosa/key/{other}/missions/{mission_id}",
                mission_id=mission_id,
                station_id=stations[0].station_id,
                http=http,
                store=store,
                tokens=tokens,
                url=url,
                missions=missions,
            )


def _openrosa(response: httpx.Response) -> None:
    assert response.headers["X-OpenRosa-Version"] == "1.0"


def _message(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{RESPONSE}OpenRosaResponse"
    message = root.find(f"{RESPONSE}message")
    assert message is not None
    return message.text or ""


async def _xform(server: Server, form_id: str) -> tuple[str, ET.Element]:
    listed = ET.fromstring((await server.http.get(f"{server.base}/formList")).content)
    for xform in listed.iter(f"{LIST}xform"):
        if xform.findtext(f"{LIST}formID") == form_id:
            url = xform.findtext(f"{LIST}downloadUrl") or ""
            return url, ET.fromstring((await server.http.get(url)).content)
    raise AssertionError(f"{form_id} not listed")


def _instance(xform: ET.Element, values: dict[str, str], instance_id: str) -> bytes:
    """The XForm's primary instance, filled as a client fills it."""
    model = xform.find(f".//{XF}model")
    assert model is not None
    primary = model.find(f"{XF}instance")
    assert primary is not None
    root = primary[0]
    ET.register_namespace("", XF.strip("{}"))
    for element in root.iter():
        name = element.tag.removeprefix(XF)
        if name in values:
            element.text = values[name]
    instance_id_node = root.find(f"{XF}meta/{XF}instanceID")
    assert instance_id_node is not None
    instance_id_node.text = instance_id
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _submission(document: bytes, *files: tuple[str, bytes]) -> dict[str, tuple[str, bytes, str]]:
    parts = {"xml_submission_file": ("submission.xml", document, "text/xml")}
    for name, content in files:
        parts[name] = (name, content, "image/jpeg")
    return parts


def _visit(server: Server, **values: str) -> dict[str, str]:
    return {
        "start": "2021-01-10T08:00:00.000+06:00",
        "end": "2021-01-10T08:40:00.000+06:00",
        "station_id": server.station_id,
        "box_sealed": "yes",
        "voters_in_queue": "12",
        "ramp": "no",
        **values,
    }


async def _stored(server: Server, submission_id: str) -> int:
    return int(
        await server.store.pool.fetchval(
            "SELECT count(*) FROM intake_receipts WHERE mission_id = $1 AND submission_id = $2",
            server.mission_id,
            submission_id,
        )
    )


async def test_instances_that_say_two_things_or_answer_elsewhere_are_refused(
    server: Server,
) -> None:
    """Each case is refused naming the element, in OpenRosa's envelope, nothing stored:
    a field given twice (the last would win), an answer outside its question's group, an
    instance of another root, an integer not written as xsd:int, unsafe or unnamed
    attachment file names, two instance parts."""
    _, xform = await _xform(server, "station_check")

    def instance(values: dict[str, str], *extra: str, root: str | None = None) -> tuple[str, bytes]:
        instance_id = f"uuid:{uuid.uuid4()}"
        document = _instance(xform, _visit(server, **values), instance_id).decode()
        assert "<meta>" in document and "</data>" in document
        if extra:
            document = document.replace("<meta>", "".join(extra) + "<meta>", 1)
        if root is not None:
            document = document.replace("<data ", f"<{root} ").replace("</data>", f"</{root}>")
        return instance_id, document.encode()

    ns = ""
    cases = [
        (instance({}, f"<{ns}station_id>NS-999</{ns}station_id>"), None, "appears twice"),
        (instance({}, f"<{ns}box_sealed>no</{ns}box_sealed>"), None, "appears twice"),
        (instance({}, f"<{ns}ramp>no</{ns}ramp>"), None, "is no question"),
        (instance({}, f"<{ns}elsewhere>no</{ns}elsewhere>"), None, "is no question"),
        (instance({}, root="not_the_form"), None, "not <not_the_form>"),
        (instance({"voters_in_queue": "٣"}), None, "'voters_in_queue'"),
        (instance({"voters_in_queue": "1_000"}), None, "'voters_in_queue'"),
        (instance({"protocol_photo": "p.jpg"}), ("a\x00b.jpg", b"x"), "a file name is"),
        (instance({"protocol_photo": "p.jpg"}), ("../p.jpg", b"x"), "a file name is"),
        (instance({"protocol_photo": "p.jpg"}), ("other.jpg", b"x"), "named by no answer"),
    ]
    for (instance_id, document), attachment, said in cases:
        files = _submission(document, *([attachment] if attachment else []))
        sent = await server.http.post(f"{server.base}/submission", files=files)
        assert 400 <= sent.status_code < 500, (said, sent.status_code, sent.text)
        _openrosa(sent)
        assert said in _message(sent), (said, _message(sent))
        assert await _stored(server, instance_id) == 0
    # Two instance parts in one submission: which one would be meant?
    _, document = instance({})
    parts = [
        ("xml_submission_file", ("a.xml", document, "text/xml")),
        ("xml_submission_file", ("b.xml", document, "text/xml")),
    ]
    twice = await server.http.post(f"{server.base}/submission", files=parts)
    assert twice.status_code == 400 and "more than one" in _message(twice)


async def test_the_form_list_gives_each_form_with_its_hash_and_download_url(
    server: Server,
) -> None:
    response = await server.http.get(f"{server.base}/formList")
    assert response.status_code == 200
    _openrosa(response)
    listed = ET.fromstring(response.content)
    assert listed.tag == f"{LIST}xforms"
    forms = {x.findtext(f"{LIST}formID"): x for x in listed.iter(f"{LIST}xform")}
    assert set(forms) == {"station_check", "eom_voting"}
    for form_id, xform in forms.items():
        url = xform.findtext(f"{LIST}downloadUrl") or ""
        assert url.startswith(server.base + "/forms/")
        download = await server.http.get(url)
        assert download.status_code == 200
        _openrosa(download)
        md5 = hashlib.md5(download.content, usedforsecurity=False).hexdigest()
        assert xform.findtext(f"{LIST}hash") == f"md5:{md5}"
        assert ET.fromstring(download.content).find(f".//{XF}instance") is not None, form_id


async def test_head_states_the_real_body_limit(server: Server) -> None:
    response = await server.http.head(f"{server.base}/submission")
    assert response.status_code == 204
    _openrosa(response)
    assert response.headers["X-OpenRosa-Accept-Content-Length"] == str(LIMIT)


async def test_a_submission_is_stored_once_and_an_edit_corrects_it(server: Server) -> None:
    _, xform = await _xform(server, "station_check")
    first = f"uuid:{uuid.uuid4()}"
    document = _instance(xform, _visit(server, protocol_photo="protocol.jpg"), first)
    photo = b"\xff\xd8\xff" + b"protocol" * 100
    sent = await server.http.post(
        f"{server.base}/submission", files=_submission(document, ("protocol.jpg", photo))
    )
    assert sent.status_code == 201, sent.text
    _openrosa(sent)
    assert first in _message(sent)
    again = await server.http.post(
        f"{server.base}/submission", files=_submission(document, ("protocol.jpg", photo))
    )
    assert again.status_code == 202, again.text
    assert await _stored(server, first) == 1
    stored_photo = await server.store.pool.fetchval(
        "SELECT content FROM submission_attachments WHERE submission_id = $1", first
    )
    assert stored_photo == photo

    # Edited on the device: a new instanceID, the old one as deprecatedID.
    edited_id = f"uuid:{uuid.uuid4()}"
    edited = _instance(xform, _visit(server, voters_in_queue="30"), edited_id)
    root = ET.fromstring(edited)
    meta = root.find(f"{XF}meta")
    assert meta is not None
    ET.SubElement(meta, f"{XF}deprecatedID").text = first
    corrected = await server.http.post(
        f"{server.base}/submission",
        files=_submission(ET.tostring(root, encoding="utf-8", xml_declaration=True)),
    )
    assert corrected.status_code == 201, corrected.text
    visits = [
        v
        for v in await mission_visits(server.store, server.mission_id)
        if v.station_id == server.station_id and v.team_id == "team-1"
    ]
    assert [v.visit_id for v in visits] == [edited_id]
    checklist = visits[0].checklists[0]
    assert (checklist.phase, checklist.form_id, checklist.form_version) == (
        Phase.voting,
        "station_check",
        "1",
    )
    assert checklist.answers["voters_in_queue"] == 30


async def test_a_critical_answer_is_recorded_with_the_report(server: Server) -> None:
    _, xform = await _xform(server, "station_check")
    instance_id = f"uuid:{uuid.uuid4()}"
    values = _visit(server, box_sealed="no", voters_in_queue="", problems="no_seal")
    sent = await server.http.post(
        f"{server.base}/submission", files=_submission(_instance(xform, values, instance_id))
    )
    assert sent.status_code == 201, sent.text
    data = await server.store.pool.fetchval(
        "SELECT e.data->'critical' FROM events AS e JOIN intake_receipts AS r USING (event_id) "
        "WHERE r.submission_id = $1",
        instance_id,
    )
    assert [(c["form_id"], c["question"], c["answer"]) for c in data] == [
        ("station_check", "box_sealed", "no")
    ]
    # The coordinator is alerted: the mission's alerts hold it (what the board and the
    # mission page show), from the critical visits alone as from all of them.
    state = await server.missions.state(server.mission_id)
    critical = await mission_visits(server.store, server.mission_id, critical_only=True)
    assert [v.visit_id for v in critical] == [instance_id]
    alerts = [
        a
        for a in mission_alerts(state, datetime.now(UTC), visits=critical)
        if a.kind is AlertKind.critical_answer
    ]
    assert [(a.subject, a.answer) for a in alerts] == [
        (f"{server.station_id} (team-1)", "station_check/box_sealed = no")
    ]
    every = await mission_visits(server.store, server.mission_id)
    assert [
        a
        for a in mission_alerts(state, datetime.now(UTC), visits=every)
        if a.kind is AlertKind.critical_answer
    ] == alerts


async def test_an_answer_the_form_refuses_is_named_and_nothing_is_stored(server: Server) -> None:
    _, xform = await _xform(server, "station_check")
    instance_id = f"uuid:{uuid.uuid4()}"
    document = _instance(xform, _visit(server, box_sealed="perhaps"), instance_id)
    sent = await server.http.post(f"{server.base}/submission", files=_submission(document))
    assert sent.status_code == 422
    _openrosa(sent)
    message = _message(sent)
    assert "answer_invalid" in message and "'box_sealed'" in message
    assert await _stored(server, instance_id) == 0


async def test_wrong_token_wrong_team_and_odd_bodies_are_refused_in_openrosa_xml(
    server: Server,
) -> None:
    _, xform = await _xform(server, "station_check")
    bad = server.base.replace("/key/eom_", "/key/eom_0")
    for response in (
        await server.http.get(f"{bad}/formList"),
        await server.http.head(f"{bad}/submission"),
    ):
        assert response.status_code == 403
        _openrosa(response)
    instance_id = f"uuid:{uuid.uuid4()}"
    document = _instance(xform, _visit(server, team_id="team-1"), instance_id)
    wrong_team = await server.http.post(
        f"{server.other_team}/submission", files=_submission(document)
    )
    assert wrong_team.status_code == 403
    assert "team_id" in _message(wrong_team)
    for body, said in (
        (b"<data", "well-formed"),
        (b'<!DOCTYPE d [<!ENTITY e "x">]><data id="station_check"/>', "DTD"),
        (b'<data id="nope" version="1"><meta><instanceID>a</instanceID></meta></data>', "nope"),
    ):
        response = await server.http.post(f"{server.base}/submission", files=_submission(body))
        assert response.status_code in (400, 422), response.text
        assert said in _message(response)
    no_part = await server.http.post(f"{server.base}/submission", files={"x": ("x", b"x")})
    assert no_part.status_code == 400 and "xml_submission_file" in _message(no_part)
    too_big = await server.http.post(
        f"{server.base}/submission", files=_submission(b"<a/>", ("big.jpg", b"x" * (LIMIT + 1)))
    )
    assert too_big.status_code == 413
    _openrosa(too_big)
    # Whatever the router itself refuses is answered as OpenRosa answers too.
    for response, status in (
        (await server.http.get(f"{server.base}/nowhere"), 404),
        (await server.http.get(f"{server.base}/submission"), 405),
        (await server.http.delete(f"{server.base}/formList"), 405),
    ):
        assert response.status_code == status
        _openrosa(response)
        assert _message(response)
    assert await _stored(server, instance_id) == 0


async def test_a_chunked_submission_is_taken(server: Server) -> None:
    _, xform = await _xform(server, "station_check")
    instance_id = f"uuid:{uuid.uuid4()}"
    request = server.http.build_request(
        "POST",
        f"{server.base}/submission",
        files=_submission(_instance(xform, _visit(server), instance_id)),
    )
    body = request.read()
    content_type = request.headers["content-type"]

    def chunks() -> Iterator[bytes]:
        for n in range(0, len(body), 256):
            yield body[n : n + 256]

    sent = await server.http.post(
        f"{server.base}/submission",
        content=_aiter(chunks()),
        headers={"content-type": content_type},
    )
    assert sent.status_code == 201, sent.text
    assert await _stored(server, instance_id) == 1


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_the_qr_code_carries_collects_settings_for_the_team(server: Server) -> None:
    token = server.base.split("/key/", 1)[1].split("/", 1)[0]
    settings = collect_settings(
        base_url=server.url, token=token, mission_id=server.mission_id, team_id="team-1"
    )
    decoded = read_payload(settings_payload(settings))
    # ODK Collect's documented shape: general / admin / project.
    assert set(decoded) == {"general", "admin", "project"}
    assert decoded["general"]["server_url"] == server.base
    assert decoded["general"]["form_update_mode"] == "match_exactly"
    assert decoded["project"]["name"]
    listed = await server.http.get(decoded["general"]["server_url"] + "/formList")
    assert listed.status_code == 200


async def test_analysis_counts_stations_as_direct_sql_does(server: Server) -> None:
    _, xform = await _xform(server, "station_check")
    other = await server.http.post(
        f"{server.other_team}/submission",
        files=_submission(
            _instance(
                xform,
                _visit(server, team_id="team-2", box_sealed="no", voters_in_queue=""),
                f"uuid:{uuid.uuid4()}",
            )
        ),
    )
    assert other.status_code == 201, other.text
    found = await mission_analysis(server.store, server.mission_id)
    rows = await server.store.pool.fetch(
        """
        WITH latest AS (
            SELECT DISTINCT ON (r.station_id, r.team_id)
                   r.station_id, c->'answers'->>'box_sealed' AS answer
            FROM intake_receipts AS r JOIN events AS e USING (event_id),
                 jsonb_array_elements(e.data->'checklists') AS c
            WHERE r.mission_id = $1 AND r.kind = 'station_visit'
              AND c->>'form_id' = 'station_check'
              AND NOT EXISTS (SELECT 1 FROM intake_receipts AS x
                              WHERE x.mission_id = $1 AND x.corrects = r.submission_id)
            ORDER BY r.station_id, r.team_id, r.global_position DESC
        )
        SELECT answer, count(DISTINCT station_id) AS stations FROM latest GROUP BY 1
        """,
        server.mission_id,
    )
    expected = {r["answer"]: r["stations"] for r in rows}
    figure = next(f for f in found.figures if (f.question, f.scope) == ("box_sealed", "all"))
    assert {c.answer: c.stations for c in figure.counts} == expected
    assert figure.asked == 1  # one station, however many reports
    assert figure.conflicting_stations == [server.station_id]
    assert figure.critical == [server.station_id]
    by_team = {
        f.scope: f
        for f in found.figures
        if f.question == "box_sealed" and f.scope.startswith("team:")
    }
    assert set(by_team) == {"team:team-1", "team:team-2"}
    # Team 1 sent three visits of the station (one edited): its latest counts, once.
    assert {c.answer: c.stations for c in by_team["team:team-1"].counts} == {"yes": 1}
    assert {c.answer: c.stations for c in by_team["team:team-2"].counts} == {"no": 1}
    # Every count names the visits behind it, and they are the mission's standing visits.
    standing = {v.global_position for v in await mission_visits(server.store, server.mission_id)}
    assert all(set(c.events) <= standing for c in figure.counts)
    # The API answers the same figures (a reader's token), and refuses an observer's.
    coordinator, _ = await server.tokens.create(role=Role.coordinator, name="Coordinator")
    api = await server.http.get(
        f"{server.url}/v1/missions/{server.mission_id}/analysis",
        headers={"Authorization": f"Bearer {coordinator}"},
    )
    assert api.status_code == 200, api.text
    assert api.json() == found.model_dump(mode="json")
    observer = server.base.split("/key/", 1)[1].split("/", 1)[0]
    refused = await server.http.get(
        f"{server.url}/v1/missions/{server.mission_id}/analysis",
        headers={"Authorization": f"Bearer {observer}"},
    )
    assert refused.status_code == 403


async def test_json_reports_are_checked_against_their_form_too(server: Server) -> None:
    """The same rules over /v1: a refused answer is a 422 naming the report, checklist
    and question; a free checklist for a phase the mission has forms for is refused."""
    token = server.base.split("/key/", 1)[1].split("/", 1)[0]

    def report(checklist: dict[str, object]) -> dict[str, object]:
        return {
            "kind": "station_visit",
            "submission_id": f"json-{uuid.uuid4().hex[:8]}",
            "mission_id": server.mission_id,
            "station_id": server.station_id,
            "team_id": "team-1",
            "arrived_at": "2021-01-10T10:00:00+06:00",
            "departed_at": "2021-01-10T10:30:00+06:00",
            "checklists": [checklist],
        }

    url = f"{server.url}/v1/missions/{server.mission_id}/reports"
    headers = {"Authorization": f"Bearer {token}"}
    bad = report(
        {
            "phase": "voting",
            "form_id": "station_check",
            "form_version": "1",
            "answers": {"box_sealed": "yes", "voters_in_queue": -4, "ramp": "no"},
        }
    )
    refused = await server.http.post(url, json={"reports": [bad]}, headers=headers)
    assert refused.status_code == 422, refused.text
    body = refused.json()["error"]
    assert body["code"] == "answer_invalid"
    (field,) = body["fields"]
    assert field["path"] == "body.reports.0"
    assert (
        "checklist 0 (voting), form 'station_check': question 'voters_in_queue'"
        in (field["message"])
    )
    free = report({"phase": "voting", "answers": {"secrecy_respected": True}})
    refused = await server.http.post(url, json={"reports": [free]}, headers=headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "form_not_assigned"
    good = report(
        {
            "phase": "voting",
            "form_id": "station_check",
            "form_version": "1",
            "answers": {"box_sealed": "yes", "voters_in_queue": 4, "ramp": "no"},
        }
    )
    recorded = await server.http.post(url, json={"reports": [good]}, headers=headers)
    assert recorded.status_code == 200, recorded.text
    assert await _stored(server, str(good["submission_id"])) == 1


async def test_a_statement_draft_cites_figures_counted_by_eom(server: Server) -> None:
    citations = [
        Citation(form_id="station_check", question="box_sealed", answer="no"),
        Citation(form_id="station_check", question="box_sealed", answer="no", scope="team:team-2"),
    ]
    forged = CitedFigure(
        **citations[0].model_dump(), stations=99, asked=99, share=1.0, as_of_position=1
    )
    # The last test of the module: election day closes, the statement stage begins.
    await server.missions.execute(server.mission_id, CloseElectionDay(), actor="coordinator")
    found = await mission_analysis(server.store, server.mission_id)
    await server.missions.execute(
        server.mission_id,
        DraftStatement(
            draft_id="cited-1",
            title="Preliminary statement",
            text="In some stations the ballot box was not sealed.",
            citations=citations,
            figures=[forged],
        ),
        actor="coordinator",
    )
    state = await server.missions.state(server.mission_id)
    figures = state.drafts["cited-1"].figures
    assert [(f.question, f.answer, f.scope) for f in figures] == [
        ("box_sealed", "no", "all"),
        ("box_sealed", "no", "team:team-2"),
    ]
    # Counted by eom (what the caller sent as figures is replaced), as of a log position.
    expected = [figure_of(found, c) for c in citations]
    assert figures == expected
    assert figures[0].stations == 1 and figures[0].asked == 1
    assert figures[0].as_of_position == found.as_of_position
    assert state.drafts["cited-1"].text_sha256 == text_sha256(
        "In some stations the ballot box was not sealed."
    )
    # A figure the forms do not have is refused, naming the citation.
    with pytest.raises(CommandRefused) as refused:
        await server.missions.execute(
            server.mission_id,
            DraftStatement(
                draft_id="cited-2",
                title="Preliminary statement",
                text="x",
                citations=[
                    Citation(form_id="station_check", question="box_sealed", answer="maybe")
                ],
            ),
            actor="coordinator",
        )
    assert refused.value.rule == "unknown_reference" and "citations.0" in refused.value.message
    # The auditor's report shows the figures, counted again from the log: the same.
    report, _ = await export_mission(server.store, server.mission_id, ExportFormat.md)
    text = report.decode()
    assert r"station_check/box_sealed = no \[all\] | 1 / 1 (100%)" in text
    assert "| same |" in text
    # Counted again differently (a log that says otherwise), the report says so.
    events = await server.store.read_stream(server.mission_id)
    check = await server.store.verify_stream(server.mission_id)
    visits = await mission_visits(server.store, server.mission_id)
    other = found.model_copy(update={"figures": []})
    built = build_report(state, events, check, visits, {found.as_of_position: other})
    (draft,) = [d for d in built.statement.drafts if d.draft_id == "cited-1"]
    assert [f.matches for f in draft.figures] == [False, False]


async def test_a_form_version_is_never_read_two_ways(server: Server, tmp_path: Path) -> None:
    """A phaseless XLSForm published for one phase cannot be published again, under the
    same version, for another: the stored version is what it is."""
    path = tmp_path / "phaseless.md"
    path.write_text(
        (FORMS / "quick_check.md")
        .read_text(encoding="utf-8")
        .replace("| phase |", "|")
        .replace("| voting |", "|")
        .replace("quick_check", "phaseless"),
        encoding="utf-8",
    )
    library = FormLibrary(server.store)
    state = await server.missions.state(server.mission_id)
    organisation = state.organisation or ""
    await library.import_file(
        server.mission_id, organisation, path, phase=Phase.opening, actor="coordinator"
    )
    with pytest.raises(FormError) as refused:
        await library.import_file(
            server.mission_id, organisation, path, phase=Phase.counting, actor="coordinator"
        )
    assert refused.value.field == "version"
    _, again = await library.import_file(
        server.mission_id, organisation, path, phase=Phase.opening, actor="coordinator"
    )
    assert again is False
