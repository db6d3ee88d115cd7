"""Least privilege in the admin. Every admin page (list, add, change, delete, history and
each custom view) is walked by a member of staff holding one permission at a time, none,
or one of the few sets a page or action needs together; every action, button and
guarded edit is tried the same way on fresh objects. A door opens exactly for the
permissions that name it (else 403, or nothing happens), an open page shows no data
beyond them, and it offers no link, button or action its reader may not use. A model,
custom page or action added to the admin fails the inventory test until it is listed
here with what it needs."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import pytest
import redis
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accounts.models import ArtistProfile, EmailVerificationToken, User
from backfills import control, registry
from backfills.models import MAX_PAUSE_MS, BackfillEvent, BackfillRun
from campaigns import services, unsubscribe
from campaigns.models import Campaign, Recipient, Suppression

pytestmark = pytest.mark.django_db

Grant = frozenset[str]
Needs = tuple[Grant, ...]  # any one of these sets of permissions opens the door
NEVER: Needs = ()  # for no member of staff short of a superuser
ANYONE: Needs = (frozenset(),)


def perm(model: type[Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def one(name: str) -> Needs:
    return (frozenset({name}),)


def viewers(*models: type[Model]) -> Needs:
    """What lets one see every one of `models`: each one's view or change permission."""
    choices = [(perm(model, "view"), perm(model, "change")) for model in models]
    return tuple(frozenset(picked) for picked in itertools.product(*choices))


def with_(first: Needs, second: Needs) -> Needs:
    """Both: one set of `first` and one of `second`."""
    return tuple(a | b for a in first for b in second)


def opens(needs: Needs, grant: Grant) -> bool:
    return any(need <= grant for need in needs)


# What the fixtures hold that only some permissions may show.
PAT_EMAIL = "pat.private@example.com"  # a connected artist
QUINN_EMAIL = "quinn.private@example.com"  # an artist who is a campaign's recipient
SUPPRESSED_EMAIL = "sam.suppressed@example.com"
MERCHANT = "MLEAK4242"
SECRETS = ("access-leak-7f3a", "refresh-leak-9c1b", "verify-leak-2d8e")
SHOWN_TO: dict[str, Needs] = {
    PAT_EMAIL: viewers(User) + viewers(ArtistProfile),
    QUINN_EMAIL: viewers(User) + viewers(ArtistProfile) + viewers(Recipient),
    # A delete page names what it deletes.
    SUPPRESSED_EMAIL: viewers(Suppression) + one("campaigns.delete_suppression"),
    MERCHANT: viewers(ArtistProfile),
    **dict.fromkeys(SECRETS, NEVER),
}
# Nobody consumes it: "run now" is seen by the message it leaves there.
SCHEDULE_QUEUE = "admin-permissions-test"

# --- one fresh object of every model registered in the admin --------------------------

_serial = itertools.count(1)


def _user() -> User:
    n = next(_serial)
    return User.objects.create_user(f"person{n}", email=f"person{n}@example.org")


def _interval() -> IntervalSchedule:
    return IntervalSchedule.objects.create(every=next(_serial), period="seconds")


def _run(status: str = "succeeded") -> BackfillRun:
    return BackfillRun.objects.create(backfill=f"fixture-{next(_serial)}", status=status)


def _schedule_entry() -> PeriodicTask:
    return PeriodicTask.objects.create(
        name=f"entry {next(_serial)}",
        task="jobs.backfills.recover",
        interval=_interval(),
        queue=SCHEDULE_QUEUE,
    )


FACTORIES: dict[type[Model], Callable[[], Model]] = {
    User: _user,
    Group: lambda: Group.objects.create(name=f"group {next(_serial)}"),
    ArtistProfile: lambda: ArtistProfile.objects.create(user=_user(), display_name="Someone"),
    EmailVerificationToken: lambda: EmailVerificationToken.objects.create(
        user=_user(), token=f"t{next(_serial)}", expires_at=timezone.now() + timedelta(days=1)
    ),
    Campaign: lambda: Campaign.objects.create(name=f"Draft {next(_serial)}"),
    Recipient: lambda: Recipient.objects.create(
        campaign=Campaign.objects.create(name="Sent"), email=f"r{next(_serial)}@example.org"
    ),
    Suppression: lambda: Suppression.objects.create(
        email=f"s{next(_serial)}@example.org", reason=Suppression.Reason.UNSUBSCRIBED
    ),
    BackfillRun: _run,
    PeriodicTask: _schedule_entry,
    IntervalSchedule: _interval,
    CrontabSchedule: lambda: CrontabSchedule.objects.create(minute=str(next(_serial) % 60)),
    SolarSchedule: lambda: SolarSchedule.objects.create(
        event="sunrise", latitude=next(_serial) % 80, longitude=0
    ),
    ClockedSchedule: lambda: ClockedSchedule.objects.create(clocked_time=timezone.now()),
}


@dataclass
class World:
    pat: User
    profile: ArtistProfile
    colleague: User  # another member of staff
    campaign: Campaign  # running; Quinn is its recipient
    specimens: dict[type[Model], Model]  # the object each model's own pages show


@pytest.fixture
def world() -> World:
    pat = User.objects.create_user("pat", email=PAT_EMAIL, user_type=User.UserType.ARTIST)
    profile = ArtistProfile.objects.create(user=pat, display_name="Pat Jones", is_approved=True)
    profile.update_sumup_connection(
        {
            "access_token": SECRETS[0],
            "refresh_token": SECRETS[1],
            "expires_in": 3600,
            "merchant_code": MERCHANT,
        }
    )
    quinn = User.objects.create_user("quinn", email=QUINN_EMAIL, user_type=User.UserType.ARTIST)
    ArtistProfile.objects.create(user=quinn, display_name="Quinn Rae", is_approved=True)
    campaign = services.create(Campaign(name="Reconnect"), actor="test")
    services.start(campaign.pk, actor="test")
    entry = _schedule_entry()
    specimens = {model: make() for model, make in FACTORIES.items()}
    specimens |= {
        User: pat,
        ArtistProfile: profile,
        EmailVerificationToken: EmailVerificationToken.objects.create(
            user=pat, token=SECRETS[2], expires_at=timezone.now() + timedelta(days=1)
        ),
        Campaign: campaign,
        Recipient: campaign.recipients.get(),
        Suppression: Suppression.objects.create(email=SUPPRESSED_EMAIL, reason="unsubscribed"),
        BackfillRun: _run("running"),
        PeriodicTask: entry,
        IntervalSchedule: entry.interval,
    }
    colleague = User.objects.create_user("colleague", is_staff=True)
    return World(pat, profile, colleague, campaign, specimens)


@pytest.fixture(autouse=True)
def _sessions_in_cookies(settings: Any) -> None:
    # Thousands of logins: no session row for each.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"


def staff_with(grants: list[Grant]) -> dict[Grant, User]:
    """One member of staff per grant, holding exactly its permissions."""
    users = User.objects.bulk_create(
        User(username=f"staff{next(_serial)}", is_staff=True) for _ in grants
    )
    by_name = {
        f"{p.content_type.app_label}.{p.codename}": p.pk
        for p in Permission.objects.select_related("content_type")
    }
    held = User.user_permissions.through
    held.objects.bulk_create(
        held(user_id=user.pk, permission_id=by_name[name])
        for user, grant in zip(users, grants, strict=True)
        for name in grant
    )
    return dict(zip(grants, users, strict=True))


def member(*names: str) -> User:
    """A member of staff holding exactly the permissions `names`."""
    grant = frozenset(names)
    return staff_with([grant])[grant]


def _admin_url(model: type[Model], page: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


# --- what each custom page and action needs -------------------------------------------

CUSTOM_URLS: dict[str, Needs] = {
    "campaigns_campaign_progress": viewers(Campaign),
    "campaigns_campaign_progress_json": viewers(Campaign),
    "campaigns_campaign_preview": viewers(Campaign, ArtistProfile),
    "campaigns_campaign_preview_html": viewers(Campaign, ArtistProfile),
    "campaigns_campaign_start": one("campaigns.start_campaign"),
    "campaigns_campaign_pause": one("campaigns.start_campaign"),
    "campaigns_campaign_resume": one("campaigns.start_campaign"),
    "campaigns_campaign_cancel": one("campaigns.cancel_campaign"),
    "backfills_start": one("backfills.start_backfillrun"),
    "backfills_progress": viewers(BackfillRun),
    "auth_user_password_change": one("accounts.change_user"),
}


# Each action the admin offers anyone (a superuser), and what it needs.
ACTIONS: dict[tuple[type[Model], str], Needs] = {
    **{
        (model, "delete_selected"): with_(viewers(model), one(perm(model, "delete")))
        for model in FACTORIES
        if model is not Recipient  # the record of who was sent what
    },
    (Recipient, "resend"): with_(viewers(Recipient), one("campaigns.resend_recipient")),
    (BackfillRun, "pause_runs"): with_(viewers(BackfillRun), one("backfills.pause_backfillrun")),
    (BackfillRun, "resume_runs"): with_(viewers(BackfillRun), one("backfills.start_backfillrun")),
    (BackfillRun, "retry_runs"): with_(viewers(BackfillRun), one("backfills.start_backfillrun")),
    (BackfillRun, "cancel_runs"): with_(viewers(BackfillRun), one("backfills.cancel_backfillrun")),
    **{
        (PeriodicTask, name): one("django_celery_beat.change_periodictask")
        for name in ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")
    },
}

# --- pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    name: str
    needs: Needs
    url: Callable[[World], str]


# A model's own pages that need other than their permission of the same name.
PAGE_EXCEPTIONS: dict[str, Needs] = {
    "campaigns.Recipient add": NEVER,  # recipients come from starting a campaign
    "campaigns.Recipient delete": NEVER,  # the record of who was sent what
    "campaigns.Campaign delete": NEVER,  # the specimen has run, and only drafts are deleted
    "backfills.BackfillRun add": NEVER,  # runs are started, never typed in
    # Django's own rule: whoever adds a login goes on to its change form.
    "accounts.User add": (frozenset({"accounts.add_user", "accounts.change_user"}),),
}


def _model_pages(model: type[Model]) -> list[Page]:
    def on_specimen(page: str) -> Callable[[World], str]:
        return lambda w: _admin_url(model, page, w.specimens[model].pk)

    pages = [
        ("list", viewers(model), lambda w: _admin_url(model, "changelist")),
        ("add", one(perm(model, "add")), lambda w: _admin_url(model, "add")),
        ("change", viewers(model), on_specimen("change")),
        ("delete", one(perm(model, "delete")), on_specimen("delete")),
        ("history", viewers(model), on_specimen("history")),
    ]
    named = [(f"{model._meta.label} {page}", needs, url) for page, needs, url in pages]
    return [Page(name, PAGE_EXCEPTIONS.get(name, needs), url) for name, needs, url in named]


PAGES = [
    *(page for model in FACTORIES for page in _model_pages(model)),
    Page("admin index", ANYONE, lambda w: reverse("admin:index")),
    # Any member of staff; each section only with its model's view (operations.overview).
    Page("overview", ANYONE, lambda w: reverse("overview:page")),
    Page(
        "overview refresh state", viewers(ArtistProfile), lambda w: reverse("overview:refresh_json")
    ),
    *(
        Page(name, CUSTOM_URLS[f"campaigns_campaign_{name}"], url)
        for name, url in (
            ("progress", lambda w: _admin_url(Campaign, "progress", w.campaign.pk)),
            ("progress_json", lambda w: _admin_url(Campaign, "progress_json", w.campaign.pk)),
            (
                "preview",
                lambda w: (
                    _admin_url(Campaign, "preview", w.campaign.pk) + f"?artist={w.profile.pk}"
                ),
            ),
            (
                "preview_html",
                lambda w: (
                    _admin_url(Campaign, "preview_html", w.campaign.pk) + f"?artist={w.profile.pk}"
                ),
            ),
        )
    ),
    Page(
        "backfill start", CUSTOM_URLS["backfills_start"], lambda w: reverse("admin:backfills_start")
    ),
    Page(
        "backfill progress",
        CUSTOM_URLS["backfills_progress"],
        lambda w: reverse("admin:backfills_progress", args=[w.specimens[BackfillRun].pk]),
    ),
    Page(
        "user password",
        CUSTOM_URLS["auth_user_password_change"],
        lambda w: reverse("admin:auth_user_password_change", args=[w.pat.pk]),
    ),
]

# --- doors: actions, buttons and guarded edits, each tried on fresh objects ------------

Attempt = tuple[str, dict[str, Any], Callable[[], bool]]  # url, POST data, did it happen?


@dataclass(frozen=True)
class Door:
    name: str
    needs: Needs
    attempt: Callable[[World], Attempt]
    superuser: bool = True  # whether a superuser gets through


def _fresh(obj: Any) -> Any:
    return type(obj)._default_manager.get(pk=obj.pk)


def _action(
    model: type[Model], name: str, make: Callable[[], Any], done: Callable[[Any], bool]
) -> Door:
    def attempt(w: World) -> Attempt:
        obj = make()
        data = {"action": name, "_selected_action": [obj.pk], "post": "yes"}
        return _admin_url(model, "changelist"), data, lambda: done(obj)

    needs = ACTIONS.get((model, name), NEVER)
    return Door(f"{model._meta.label} {name}", needs, attempt, superuser=bool(needs))


def _gone(obj: Any) -> bool:
    return not type(obj)._default_manager.filter(pk=obj.pk).exists()


def _becomes(field: str, value: object) -> Callable[[Any], bool]:
    return lambda obj: getattr(_fresh(obj), field) == value


def _campaign_button(button: str, before: str, after: str) -> Door:
    def attempt(w: World) -> Attempt:
        campaign = services.create(Campaign(name=f"Button {next(_serial)}"), actor="test")
        if before != "draft":
            services.start(campaign.pk, actor="test")
        if before == "paused":
            services.pause(campaign.pk, actor="test")
        url = _admin_url(Campaign, button, campaign.pk)
        return url, {}, lambda: _fresh(campaign).status == after

    return Door(f"campaign {button}", CUSTOM_URLS[f"campaigns_campaign_{button}"], attempt)


def _start_backfill(w: World) -> Attempt:
    name = registry.all_backfills()[0].name
    started = BackfillRun.objects.filter(backfill=name).exists
    return reverse("admin:backfills_start"), {"backfill": name}, started


def _resend(w: World) -> Attempt:
    recipient = w.campaign.recipients.get()
    Recipient.objects.filter(pk=recipient.pk).update(status=Recipient.Status.UNKNOWN)
    data = {"action": "resend", "_selected_action": [recipient.pk]}
    return _admin_url(Recipient, "changelist"), data, lambda: _fresh(recipient).status == "queued"


def _periodic(name: str, enabled: bool) -> Door:
    def make() -> PeriodicTask:
        entry = _schedule_entry()
        PeriodicTask.objects.filter(pk=entry.pk).update(enabled=enabled)
        return entry

    return _action(PeriodicTask, name, make, _becomes("enabled", not enabled))


def _queued_runs() -> int:
    return cast(int, redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(SCHEDULE_QUEUE))


def _run_now(w: World) -> Attempt:
    entry, before = _schedule_entry(), _queued_runs()
    data = {"action": "run_tasks", "_selected_action": [entry.pk]}
    return _admin_url(PeriodicTask, "changelist"), data, lambda: _queued_runs() > before


def _set_pause(w: World) -> Attempt:
    run = _run("running")
    data = {"pause_ms": "500", "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"}
    return _admin_url(BackfillRun, "change", run.pk), data, lambda: _fresh(run).pause_ms == 500


def _move_profile(w: World) -> Attempt:
    other = _user()
    data = {"user": other.pk, "display_name": "Pat Jones", "is_approved": "on"}
    url = _admin_url(ArtistProfile, "change", w.profile.pk)
    return url, data, lambda: _fresh(w.profile).user_id == other.pk


def user_form(user: User, **changes: str) -> dict[str, str]:
    joined = timezone.localtime(user.date_joined)
    return {
        "username": user.username,
        "email": user.email,
        "user_type": user.user_type,
        "is_active": "on",
        "date_joined_0": joined.date().isoformat(),
        "date_joined_1": joined.time().strftime("%H:%M:%S"),
        **changes,
    }


def _make_superuser(w: World) -> Attempt:
    data = user_form(w.pat, is_staff="on", is_superuser="on")
    return _admin_url(User, "change", w.pat.pk), data, lambda: _fresh(w.pat).is_superuser


def _set_colleague_password(w: World) -> Attempt:
    new = "taken-over-9x!Q"
    data = {"password1": new, "password2": new, "usable_password": "true"}
    url = reverse("admin:auth_user_password_change", args=[w.colleague.pk])
    return url, data, lambda: _fresh(w.colleague).check_password(new)


def _grant_to_group(w: World) -> Attempt:
    group = Group.objects.create(name=f"group {next(_serial)}")
    power = Permission.objects.get(codename="change_user")
    data = {"name": group.name, "permissions": [power.pk]}
    granted = group.permissions.filter(pk=power.pk).exists
    return _admin_url(Group, "change", group.pk), data, granted


DOORS = [
    *(_action(model, "delete_selected", FACTORIES[model], _gone) for model in FACTORIES),
    _campaign_button("start", "draft", "running"),
    _campaign_button("pause", "running", "paused"),
    _campaign_button("resume", "paused", "running"),
    _campaign_button("cancel", "running", "cancelled"),
    Door("recipient resend", ACTIONS[Recipient, "resend"], _resend),
    Door("backfill start", CUSTOM_URLS["backfills_start"], _start_backfill),
    _action(BackfillRun, "pause_runs", lambda: _run("running"), _becomes("status", "paused")),
    _action(BackfillRun, "resume_runs", lambda: _run("paused"), _becomes("status", "running")),
    _action(BackfillRun, "retry_runs", lambda: _run("failed"), _becomes("status", "running")),
    _action(BackfillRun, "cancel_runs", lambda: _run("paused"), _becomes("status", "cancelled")),
    Door(
        "backfill pause_ms",
        (frozenset({"backfills.change_backfillrun", "backfills.pause_backfillrun"}),),
        _set_pause,
    ),
    _periodic("enable_tasks", enabled=False),
    _periodic("disable_tasks", enabled=True),
    _periodic("toggle_tasks", enabled=True),
    Door("schedule run_tasks", ACTIONS[PeriodicTask, "run_tasks"], _run_now),
    Door("profile moved to another login", NEVER, _move_profile, superuser=False),
    Door("user made superuser", NEVER, _make_superuser),
    Door("staff login's password set", NEVER, _set_colleague_password),
    Door("group granted a permission", NEVER, _grant_to_group),
]

# --- who tries ------------------------------------------------------------------------

ALL_PERMISSIONS = sorted(
    {perm(model, action) for model in FACTORIES for action in model._meta.default_permissions}
    | {
        f"{model._meta.app_label}.{name}"
        for model in FACTORIES
        for name, _ in model._meta.permissions
    }
)
SINGLES = [frozenset(), *(frozenset({name}) for name in ALL_PERMISSIONS)]


def _with_sets(needs: list[Needs]) -> list[Grant]:
    """SINGLES, and each set of several permissions that `needs` name."""
    sets = {need for alternatives in needs for need in alternatives if len(need) > 1}
    return SINGLES + sorted(sets, key=sorted)


def _label(grant: Grant) -> str:
    return "+".join(sorted(grant)) or "no permission"


# --- what an open page must not hold ----------------------------------------------------

_LINK = re.compile(r'(?:href|action)="([^"]*)"')
_ACTION_MENU = re.compile(r'<select name="action".*?</select>', re.DOTALL)
_OPTION = re.compile(r'<option value="(\w+)"')


def overreach(html: str, url: str, grant: Grant, model: type[Model] | None) -> list[str]:
    """What the page shows or offers beyond `grant`: data, links and buttons to custom
    pages, and actions in the list's menu."""
    found = [
        f"shows {marker}"
        for marker, needs in SHOWN_TO.items()
        if marker in html and not opens(needs, grant)
    ]
    for target in _LINK.findall(html):
        path = urlsplit(urljoin(url, target)).path
        try:
            name = resolve(path).url_name if path.startswith("/admin/") else None
        except Resolver404:
            name = None
        if name in CUSTOM_URLS and not opens(CUSTOM_URLS[name], grant):
            found.append(f"offers {path}")
    for menu in _ACTION_MENU.findall(html):
        for action in _OPTION.findall(menu):
            needs = ACTIONS.get((model, action)) if model else None
            if needs is None or not opens(needs, grant):
                found.append(f"offers the action {action}")
    return found


def _model_of(page: Page) -> type[Model] | None:
    return next((m for m in FACTORIES if page.name.startswith(f"{m._meta.label} ")), None)


@pytest.mark.parametrize("grant", _with_sets([page.needs for page in PAGES]), ids=_label)
def test_each_page_opens_exactly_for_its_permissions_and_shows_nothing_beyond(
    grant: Grant, world: World, client: Client
) -> None:
    client.force_login(member(*grant))
    wrong = []
    for page in PAGES:
        url = page.url(world)
        response = client.get(url)
        expected = 200 if opens(page.needs, grant) else 403
        if response.status_code != expected:
            wrong.append(f"{page.name}: {response.status_code}, expected {expected}")
        elif expected == 200:
            problems = overreach(response.content.decode(), url, grant, _model_of(page))
            wrong += [f"{page.name} {problem}" for problem in problems]
    assert not wrong, f"with {_label(grant)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("door", DOORS, ids=lambda door: door.name)
def test_each_action_and_button_works_exactly_for_its_permissions(
    door: Door, world: World, client: Client
) -> None:
    grants = _with_sets([door.needs])
    users = staff_with(grants)
    root = User.objects.create_superuser(f"root{next(_serial)}")
    tries = [(users[g], _label(g), opens(door.needs, g)) for g in grants]
    wrong = []
    before = transaction.savepoint()
    url, data, happened = door.attempt(world)
    for user, who, expected in [*tries, (root, "a superuser", door.superuser)]:
        client.force_login(user)
        response = client.post(url, data)
        if happened() is not expected:
            outcome = "it happened" if not expected else "nothing happened"
            wrong.append(f"{who}: {outcome} ({response.status_code})")
        if happened():  # start the next try from the same state
            transaction.savepoint_rollback(before)
            url, data, happened = door.attempt(world)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(SCHEDULE_QUEUE)
    assert not wrong, f"{door.name}:\n" + "\n".join(wrong)


def test_every_model_page_and_action_of_the_admin_is_in_these_tables(rf: RequestFactory) -> None:
    registered = admin.site._registry  # the site has no public list of its model admins
    assert set(registered) == set(FACTORIES)
    defaults = {"changelist", "add", "history", "delete", "change", "autocomplete"}
    custom = {
        pattern.name
        for model, model_admin in registered.items()
        for pattern in model_admin.get_urls()
        if pattern.name
        and pattern.name.removeprefix(f"{model._meta.app_label}_{model._meta.model_name}_")
        not in defaults
    }
    assert custom == set(CUSTOM_URLS)
    request = rf.get("/admin/")
    request.user = User(is_superuser=True, is_active=True, is_staff=True)
    offered = {
        (model, name)
        for model, model_admin in registered.items()
        for name in model_admin.get_actions(request)
    }
    assert offered == set(ACTIONS)


def test_the_preview_shows_a_sample_unsubscribe_link_that_unsubscribes_no_one(
    world: World, client: Client
) -> None:
    client.force_login(member(*viewers(Campaign, ArtistProfile)[0]))

    page = client.get(
        _admin_url(Campaign, "preview", world.campaign.pk), {"artist": world.profile.pk}
    )

    assert page.status_code == 200 and PAT_EMAIL in page.text
    links = re.findall(r"/email/unsubscribe/([^/\s\"<>&]+)/", page.text)
    assert links and set(links) == {unsubscribe.PREVIEW_SAMPLE}
    assert "sample" in links[0] and unsubscribe.read_token(links[0]) is None
    followed = client.post(
        reverse("campaigns:unsubscribe", args=[links[0]]), {"List-Unsubscribe": "One-Click"}
    )
    assert followed.status_code == 404
    assert not Suppression.objects.filter(email=PAT_EMAIL).exists()


def test_a_backfill_pause_has_a_ceiling_and_each_change_is_recorded(client: Client) -> None:
    staff = member("backfills.change_backfillrun", "backfills.pause_backfillrun")
    client.force_login(staff)
    run = _run("running")
    url = _admin_url(BackfillRun, "change", run.pk)
    inline = {"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"}

    refused = client.post(url, {**inline, "pause_ms": str(MAX_PAUSE_MS + 1)})
    assert refused.status_code == 200
    assert f"less than or equal to {MAX_PAUSE_MS}" in refused.text
    assert _fresh(run).pause_ms == 0

    assert client.post(url, {**inline, "pause_ms": str(MAX_PAUSE_MS)}).status_code == 302
    assert _fresh(run).pause_ms == MAX_PAUSE_MS
    event = BackfillEvent.objects.get(run=run, action="set pause")
    assert (event.user, event.detail) == (staff, f"0 ms -> {MAX_PAUSE_MS} ms between batches")
    with pytest.raises(control.ControlError, match="from 0 to 10000 ms"):
        control.set_pause(run.pk, 60_000)


def test_staff_who_may_change_a_profile_edit_it_but_never_move_it_to_another_login(
    world: World, client: Client
) -> None:
    client.force_login(member(perm(ArtistProfile, "change")))
    url, data, moved = _move_profile(world)

    response = client.post(url, {**data, "display_name": "Pat J."})

    assert response.status_code == 302
    assert _fresh(world.profile).display_name == "Pat J." and not moved()
    assert 'name="user"' not in client.get(url).text


def test_staff_who_may_change_users_edit_an_artist_but_grant_nothing_and_leave_staff_alone(
    world: World, client: Client
) -> None:
    client.force_login(member("accounts.change_user"))

    edited = client.post(
        _admin_url(User, "change", world.pat.pk),
        user_form(world.pat, email="pat.new@example.com", is_staff="on", is_superuser="on"),
    )
    colleague = client.post(
        _admin_url(User, "change", world.colleague.pk),
        user_form(world.colleague, email="colleague@evil.example"),
    )

    assert edited.status_code == 302
    pat = _fresh(world.pat)
    assert pat.email == "pat.new@example.com" and not (pat.is_staff or pat.is_superuser)
    assert colleague.status_code == 403 and _fresh(world.colleague).email == ""
