"""The console's command forms, drawn from the commands' models (pure: no browser)."""

from __future__ import annotations

import pytest

from console.forms import FormErrors, form_fields, parse_form
from domain import commands as c
from domain.commands import COMMAND_TYPES


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_every_command_has_a_form_and_an_empty_one_names_what_is_missing(name: str) -> None:
    model = COMMAND_TYPES[name]
    fields = form_fields(model)
    assert "type" not in {f.name for f in fields}
    required = {f.name for f in fields if f.required}
    try:
        parse_form(model, [])
    except FormErrors as error:
        assert set(error.problems) <= {f.name for f in fields} | {""}
        assert required <= set(error.problems) | {f.name for f in fields if f.kind == "group"}
    else:
        assert not required


def test_an_optional_group_left_empty_is_left_out() -> None:
    """A reminder ladder not filled in is none (the organisation's own applies), not a
    ladder of the model's defaults."""
    ladder = next(f for f in form_fields(c.RequestNominations) if f.name == "ladder")
    assert not ladder.required
    assert all(child.default == "" for child in ladder.children)
    command = parse_form(c.RequestNominations, [("deadline", "2030-01-10T10:00")])
    assert isinstance(command, c.RequestNominations)
    assert command.ladder is None
    assert command.reminders is False  # an unchecked box is false


def test_rows_lines_and_keys_become_the_models_lists_and_mappings() -> None:
    command = parse_form(
        c.RegisterInvitation,
        [
            ("mission_id", "m-1"),
            ("organisation", "Turkic Council"),
            ("host_country", "kz"),
            ("inviting_authority", "CEC"),
            ("election.name", "Parliamentary"),
            ("election.type", "parliamentary"),
            ("election.date", "2021-01-10"),
            ("mission_window.start", "2021-01-06"),
            ("mission_window.end", "2021-01-10"),
            ("member_states", "AZ\n kg \n\n"),
            ("role_quotas.short_term_observer", "8"),
        ],
    )
    assert isinstance(command, c.RegisterInvitation)
    assert command.member_states == ["AZ", "KG"]
    assert command.host_country == "KZ"
    assert {k.value: v for k, v in command.role_quotas.items()} == {"short_term_observer": 8}
    sent = parse_form(
        c.SendRecommendations,
        [
            ("recipients.0.kind", "member_state"),
            ("recipients.0.name", "az"),
            ("recipients.1.kind", "member_state"),  # a row given nothing but its preset
            ("sent_on", "2021-01-15"),
        ],
    )
    assert isinstance(sent, c.SendRecommendations)
    assert [r.name for r in sent.recipients] == ["AZ"]


def test_what_the_model_refuses_is_named_by_its_form_name() -> None:
    with pytest.raises(FormErrors) as refused:
        parse_form(
            c.IssueRecommendations,
            [("recommendations.0.id", "R1"), ("recommendations.0.priority", "urgent")],
        )
    assert {"recommendations.0.text", "recommendations.0.priority"} <= set(refused.value.problems)
    with pytest.raises(FormErrors) as unknown:
        parse_form(c.CloseElectionDay, [("nonsense", "1"), ("recommendations.9999.id", "x")])
    assert set(unknown.value.problems) == {"nonsense", "recommendations.9999.id"}
