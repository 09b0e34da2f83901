"""The console's pages, one blueprint per area; each view calls staff/service/ and renders a template."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from common import conversation_ids, metrics
from common.records.bookings import STATUSES
from staff.console import account, chart, editing, live, models, notify, stories, wording
from staff.console.base import SignedIn, console, requires, safe_next
from staff.service import accounts, content, inbox, numbers, releases, second_factor, transcripts
from staff.service import bookings as booking_service
from staff.service import models as model_service

auth = Blueprint("auth", __name__)
today = Blueprint("today", __name__)
bookings = Blueprint("bookings", __name__, url_prefix="/bookings")
review = Blueprint("inbox", __name__, url_prefix="/inbox")
conversations = Blueprint("conversations", __name__, url_prefix="/conversations")
admin = Blueprint("admin", __name__, url_prefix="/admin")
MAX_NOTE_CHARS = 1000


def register(app: Flask) -> None:
    """Add every area's pages to the app."""
    for blueprint in (
        auth,
        today,
        bookings,
        review,
        conversations,
        admin,
        live.live,
        *account.BLUEPRINTS,
        *editing.BLUEPRINTS,
        *wording.BLUEPRINTS,
        *stories.BLUEPRINTS,
        *models.BLUEPRINTS,
        *notify.BLUEPRINTS,
    ):
        app.register_blueprint(blueprint)


def day_arg(name: str, default: date | None = None) -> date | None:
    """A YYYY-MM-DD query value (None, with a message, if it is not a date)."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        flash(f'"{raw}" is not a date: use the date picker, or write it as YYYY-MM-DD.', "error")
        return default


def clinic_today() -> date:
    """Today in the clinic's time zone."""
    return datetime.now(console().clinic.zone).date()


# ---- sign-in -----------------------------------------------------------------------------
@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in page; failures are counted in the database (throttling across processes)."""
    if current_user.is_authenticated:
        return redirect(url_for("today.home"))
    state = console()
    message, status = "", 200
    name = ""
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()[:64]
        password = request.form.get("password") or ""
        if not name or not password:
            message, status = "Enter your name and your password.", 400
        else:
            result = accounts.sign_in(state.engine, name, password, request.remote_addr or "", state.secret)
            if result.user is not None:
                if account.needs_second_factor(result.user):  # the code next, or setting it up
                    return account.begin(result.user, request.args.get("next"))
                session.clear()
                session.permanent = True
                login_user(SignedIn(result.user))
                accounts.signed_in(state.engine, result.user.id)
                accounts.audit(state.engine, result.user.name, "signed in")
                return redirect(safe_next(request.args.get("next")))
            message, status = result.message, 429 if result.throttled else 401
            metrics.SIGN_IN_FAILURES.labels(reason="throttled" if result.throttled else "password").inc()
    no_accounts = accounts.count_users(state.engine) == 0
    return render_template("login.html", message=message, name=name, no_accounts=no_accounts), status


@auth.post("/logout")
def logout() -> Any:
    """Sign out: this session ends, and so does every other copy of its cookie."""
    state = console()
    if current_user.is_authenticated:
        accounts.end_sessions(state.engine, current_user.user.id)
        accounts.audit(state.engine, current_user.name, "signed out")
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


# ---- today -------------------------------------------------------------------------------
@today.get("/")
@requires("today")
def home() -> Any:
    """New requests, failed deliveries, unanswered questions and the week's numbers."""
    state = console()
    zone = state.clinic.zone
    last = day_arg("day", clinic_today()) or clinic_today()
    figures = numbers.week(state.database_url, last, zone)
    counts = booking_service.counts(state.store)
    start, end = inbox.period(7, zone)
    from staff.service import review as review_rules

    live = model_service.live(
        state.engine, state.settings.model, state.settings.model_store_dir
    )  # the model visitors get
    unanswered = len(
        inbox.candidates(
            review_rules.read_turns(state.database_url, start, end), inbox.decided_keys(state.engine)
        )
    )
    from staff.service import notifications

    return render_template(
        "today.html",
        email=notifications.health(state.engine, state.settings),
        clinic_zone=zone,
        week=figures,
        last=last,
        counts=counts,
        unanswered=unanswered,
        pending=len(inbox.pending(state.engine, live.archive)),
        chart=chart.week_chart(figures),
        categories=numbers.CATEGORIES,
        today=clinic_today(),
        previous=last - timedelta(days=7),
        following=min(last + timedelta(days=7), clinic_today()),
        live=live,
        release_changes=releases.waiting(state.root) if current_user.may("content") else 0,
    )


# ---- bookings ----------------------------------------------------------------------------
def booking_filter() -> booking_service.BookingFilter:
    """The list's filters from the query string."""
    status = request.args.get("status") or ""
    return booking_service.BookingFilter(
        status=status if status in STATUSES else "",
        since=day_arg("since"),
        until=day_arg("until"),
        search=(request.args.get("q") or "").strip()[:100],
    )


@bookings.get("/", endpoint="index")
@requires("bookings")
def list_bookings() -> Any:
    """Consultation requests with filters."""
    state = console()
    criteria = booking_filter()
    rows = booking_service.find(state.store, criteria, state.clinic.zone)
    elsewhere = booking_service.in_other_statuses(state.store, criteria, state.clinic.zone)
    return render_template(
        "bookings.html", rows=rows, criteria=criteria, statuses=STATUSES, elsewhere=elsewhere
    )


@bookings.get("/export.csv")
@requires("bookings")
def export() -> Response:
    """The filtered requests as a CSV file."""
    return export_as("csv")


@bookings.get("/export.xlsx")
@requires("bookings")
def export_xlsx() -> Response:
    """The filtered requests as an Excel workbook (text cells: phone numbers keep their +)."""
    return export_as("xlsx")


def export_as(kind: str) -> Response:
    """The filtered requests as a download of this kind ("csv" or "xlsx"), audited with the count."""
    state = console()
    zone = state.clinic.zone
    rows = booking_service.find(state.store, booking_filter(), zone, limit=100_000)
    rows = booking_service.with_history(state.store, rows, zone)
    state.audit("exported bookings", detail=f"{len(rows)} request(s), {kind.upper()}")
    stamp = datetime.now(zone).strftime("%Y-%m-%d")
    if kind == "xlsx":
        body, mimetype = booking_service.export_xlsx(rows, zone), booking_service.XLSX_MIMETYPE
    else:
        body, mimetype = booking_service.export_csv(rows, zone), "text/csv"
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="consultation-requests-{stamp}.{kind}"'},
    )


def booking_or_404(reference: str) -> dict[str, Any]:
    """The request with this reference, or the 404 page."""
    row = booking_service.get(console().store, reference, console().clinic.zone)
    if row is None:
        abort(404)
    return row


@bookings.get("/<reference>")
@requires("bookings")
def detail(reference: str) -> Any:
    """One request, its follow-up and its actions."""
    state = console()
    row = booking_or_404(reference)
    handles = transcripts.handles_by_reference(state.database_url, row["reference"], handle_secret())
    return render_template(
        "booking.html",
        row=row,
        history=booking_service.history(state.store, row["reference"], state.clinic.zone),
        when=booking_service.when(row) if row["kind"] != "callback" else None,
        statuses=STATUSES,
        handles=handles,
        webhook=bool(state.clinic.booking_webhook_url),
        may_erase=current_user.may("erase"),
    )


@bookings.post("/<reference>/status")
@requires("bookings")
def set_status(reference: str) -> Any:
    """Mark a request new, contacted or done, with a note."""
    state = console()
    row = booking_or_404(reference)
    status = request.form.get("status") or ""
    note = (request.form.get("note") or "").strip()
    if status not in STATUSES:
        flash("Choose new, contacted or done.", "error")
    elif len(note) > MAX_NOTE_CHARS:
        flash(f"The note is too long: keep it under {MAX_NOTE_CHARS} characters.", "error")
    elif status == row["status"] and not note:
        flash(f"{row['reference']} is already marked {status}: nothing to save.", "error")
    else:
        booking_service.set_status(state.store, row["reference"], status, note, current_user.name)
        if status != row["status"]:
            state.audit("changed booking status", row["reference"], f"{row['status']} -> {status}")
            added = " Your note is in its history." if note else ""
            flash(f"{row['reference']} is marked {status}.{added}", "success")
        else:
            state.audit("added a booking note", row["reference"])
            flash(f"Your note is added to {row['reference']}'s history.", "success")
    return redirect(url_for("bookings.detail", reference=row["reference"]))


@bookings.post("/<reference>/deliver")
@requires("bookings")
def redeliver(reference: str) -> Any:
    """Send the request to the booking system again."""
    state = console()
    row = booking_or_404(reference)
    url = state.clinic.booking_webhook_url
    if not url:
        flash("clinic.yml has no booking_webhook_url, so there is no booking system to send to.", "error")
    elif booking_service.redeliver(state.store, row["reference"], url):
        state.audit("re-delivered booking", row["reference"], "delivered")
        flash(f"{row['reference']} was delivered to the booking system.", "success")
    else:
        state.audit("re-delivered booking", row["reference"], "failed")
        flash(
            f"The booking system did not accept {row['reference']}. It is kept; try again later or "
            "call the booking system's support.",
            "error",
        )
    return redirect(url_for("bookings.detail", reference=row["reference"]))


@bookings.route("/<reference>/erase", methods=["GET", "POST"])
@requires("erase")
def erase(reference: str) -> Any:
    """Erase one person's requests and conversations, after saying what goes and a confirmation."""
    state = console()
    row = booking_or_404(reference)
    if request.method == "POST":
        if request.form.get("confirm") != "yes":
            flash("Tick the box to confirm the erasure.", "error")
        else:
            erasure = booking_service.erase_person(
                state.store, state.clinic, [row["reference"]], root=state.root, staff_name=current_user.name
            )
            # References and counts only: the audit log never holds personal data.
            state.audit("erased a person", row["reference"], erasure.summary()[:200])
            flash(f"Erased {erasure.summary()}.", "success")
            if erasure.not_told:
                flash(
                    f"The booking system may still hold {', '.join(erasure.not_told)}: "
                    + (
                        "it did not answer now and is told again by `make bookings-deliver`."
                        if state.clinic.booking_webhook_url
                        else "clinic.yml has no booking_webhook_url, so delete it there by hand."
                    ),
                    "error",
                )
            return redirect(url_for("bookings.index"))
    preview = booking_service.erase_preview(state.store, state.clinic, [row["reference"]])
    return render_template(
        "erase.html", row=row, preview=preview, webhook=bool(state.clinic.booking_webhook_url)
    )


@bookings.route("/purge", methods=["GET", "POST"])
@requires("bookings_purge")
def purge() -> Any:
    """Delete requests and conversations older than N days, after saying how many go."""
    state = console()
    raw = (request.values.get("days") or "").strip()
    days = int(raw) if raw.isdigit() and int(raw) > 0 else None
    if raw and days is None:
        flash("Write the age as a whole number of days, e.g. 90.", "error")
    if request.method == "POST" and days is not None:
        if request.form.get("confirm") != "yes":
            flash("Tick the box to confirm the deletion.", "error")
        else:
            gone = booking_service.purge(state.store, days)
            state.audit(
                "purged old data",
                detail=f"older than {days} days: {gone['requests']} request(s), {gone['events']} event(s)",
            )
            flash(
                f"Deleted {gone['requests']} request(s) and {gone['events']} conversation event(s) "
                f"older than {days} days.",
                "success",
            )
            return redirect(url_for("bookings.purge"))
    preview = booking_service.purge_preview(state.store, days) if days else None
    return render_template("purge.html", days=days, preview=preview)


# ---- unanswered questions ----------------------------------------------------------------
@review.get("/", endpoint="index")
@requires("inbox")
def list_groups() -> Any:
    """Groups of unanswered messages of the last 7 days, the pending additions and the new-topic list."""
    state = console()
    removed = inbox.remove_erased_examples(state.engine, state.root, current_user.name)
    if removed:  # a visitor erased their conversation in the chat: its examples leave the data
        flash(
            f"{removed} example(s) added from a conversation that its visitor has since erased were "
            "taken out of the training data.",
            "info",
        )
    groups = inbox.inbox(state.engine, state.database_url, state.clinic.zone)
    pending = inbox.pending(
        state.engine,
        model_service.live(state.engine, state.settings.model, state.settings.model_store_dir).archive,
    )
    choices = inbox.choices(state.root)
    titles = {choice.intent: choice.title for choice in choices}
    return render_template(
        "inbox.html",
        groups=groups,
        choices=choices,
        titles=titles,
        pending=pending,
        pending_by_title={
            titles.get(name, "another question"): texts for name, texts in inbox.by_intent(pending).items()
        },
        new_topics=inbox.new_topics(state.engine),
    )


@review.post("/decide")
@requires("inbox")
def decide() -> Any:
    """One decision on one group: add to an intent, not in the document, new topic, ignore."""
    state = console()
    action = request.form.get("action") or ""
    keys = request.form.getlist("key")
    groups = inbox.inbox(state.engine, state.database_url, state.clinic.zone)
    members = inbox.find_group(groups, keys)
    if not keys:
        flash("Tick at least one of the messages, then choose what to do with them.", "error")
        return redirect(url_for("inbox.index"))
    if not members:
        flash("Those messages are no longer in the inbox (someone may have decided them already).", "info")
        return redirect(url_for("inbox.index"))
    if action in ("add", "not_in_document"):
        chosen = inbox.intent_of(request.form.get("intent") or "")
        intent = inbox.OUT_OF_SCOPE if action == "not_in_document" else chosen
        if not intent:
            flash("Choose the topic these messages ask about from the list, then press Add.", "error")
            return redirect(url_for("inbox.index"))
        if intent not in inbox.intents(state.root):
            flash("That is not one of the topics in the list: choose one, then press Add.", "error")
            return redirect(url_for("inbox.index"))
        if request.form.get("anyway") != "yes":
            settings = state.settings
            model = model_service.live(state.engine, settings.model, settings.model_store_dir).archive
            waiting = [(r["text"], r["intent"]) for r in inbox.pending(state.engine, model) if r["intent"]]
            texts = inbox.addable(state.engine, state.root, members)  # refused ones are not added anyway
            nearer = inbox.nearer_elsewhere(state.root, texts, intent, model, waiting)
            if nearer:  # ask before an addition that may pull another topic's questions to this one
                return render_template(
                    "inbox_confirm.html",
                    nearer=nearer,
                    members=members,
                    value=inbox.Choice(intent, "", "").value,
                    action=action,
                    title=inbox.title_of(state.root, intent),
                )
        outcome = inbox.add_examples(state.engine, state.root, members, intent, current_user.name)
        for problem in outcome.problems:
            flash(problem, "error")
        for text, why in outcome.skipped:
            flash(f'Not added: "{text}": {why}.', "info")
        for added_to, texts in outcome.added.items():
            title = inbox.title_of(state.root, added_to)
            state.audit("added training examples", title, inbox.questions(len(texts)))
            flash(
                f"Added {inbox.questions(len(texts))} to '{title}'. They wait in the training data "
                "until the assistant is trained again.",
                "success",
            )
    elif action in ("new_topic", "ignore"):
        decision = inbox.NEW_TOPIC if action == "new_topic" else inbox.IGNORED
        inbox.mark(state.engine, members, decision, current_user.name)
        state.audit("marked questions", decision, f"{len(members)} wording(s)")
        flash(
            "Added to the list of new topics for the editor." if action == "new_topic" else "Ignored.",
            "success",
        )
    else:
        flash("Choose what to do with the messages.", "error")
    return redirect(url_for("inbox.index"))


# ---- conversations -----------------------------------------------------------------------
def handle_secret() -> str:
    """The key of the public handles that name conversations on these pages (never their ids)."""
    return console().settings.live_chat_key()


@conversations.get("/", endpoint="index")
@requires("conversations")
def find_conversations() -> Any:
    """Find conversations by booking reference, by handle (C-..., as the Live page shows) or by day.

    Each is listed with its outcomes and, for roles that may read transcripts, the visitor's
    first question; `outcome` narrows the list to the conversations with that outcome.
    """
    state = console()
    zone = state.clinic.zone
    reference = (request.args.get("reference") or "").strip()[:20]
    if conversation_ids.is_handle(reference.upper()):
        return redirect(url_for("conversations.show", id=reference.upper()))
    day = day_arg("day", None if reference else clinic_today())
    outcome = request.args.get("outcome") or ""
    outcome = outcome if outcome in transcripts.OUTCOMES else ""
    words = current_user.may("conversations")  # the first words are a transcript's: the same rule
    found: list[transcripts.Summary] = []
    if reference:
        senders = transcripts.by_reference(state.database_url, reference)
        found = [
            transcripts.summary(state.database_url, sender, zone, handle_secret(), words)
            for sender in senders
        ]
        if len(found) == 1:
            return redirect(url_for("conversations.show", id=found[0].handle))
    elif day:
        start = datetime.combine(day, time(), zone).timestamp()
        found = transcripts.between(state.database_url, start, start + 86400, zone, handle_secret(), words)
    counts = {key: sum(key in c.outcomes for c in found) for key in transcripts.OUTCOMES}
    shown = [c for c in found if not outcome or outcome in c.outcomes]
    if words and shown:
        state.audit("listed conversations", day.isoformat() if day else reference, "first questions shown")
    return render_template(
        "conversations.html",
        found=shown,
        total=len(found),
        counts=counts,
        outcomes=transcripts.OUTCOMES,
        outcome=outcome,
        reference=reference,
        day=day,
    )


@conversations.get("/view")
@requires("conversations")
def show() -> Any:
    """One transcript, found by its handle; personal data hidden for roles that may not see it."""
    state = console()
    handle = (request.args.get("id") or "").strip().upper()[:40]
    sender = transcripts.resolve(state.database_url, handle, handle_secret())
    if sender is None:
        abort(404)
    personal = current_user.may("personal_data")
    titles = {topic.key: topic.title for topic in content.topics(state.root)}
    transcript = transcripts.read(
        state.database_url, sender, state.clinic.zone, personal, handle_secret(), titles
    )
    if not transcript.lines:
        abort(404)
    state.audit("read conversation", handle, "personal data shown" if personal else "personal data hidden")
    return render_template(
        "transcript.html", transcript=transcript, personal=personal, outcomes=transcripts.OUTCOMES
    )


# ---- admin -------------------------------------------------------------------------------
@admin.route("/users", methods=["GET", "POST"])
@requires("users")
def users() -> Any:
    """Staff accounts: add one, change a role, switch an account off, set a new password."""
    state = console()
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "create":
                name = (request.form.get("name") or "").strip()
                role = request.form.get("role") or ""
                accounts.create_user(state.engine, name, role, request.form.get("password") or "")
                state.audit("added a staff account", name, role)
                flash(f"{name} can now sign in as {role}.", "success")
            elif action == "update":
                user = accounts.get(state.engine, int(request.form.get("id") or 0))
                if user is None:
                    abort(404)
                role, active = request.form.get("role") or "", request.form.get("active") == "yes"
                accounts.set_role_and_active(state.engine, user.id, role, active)
                state.audit(
                    "changed a staff account", user.name, f"{role}, {'active' if active else 'switched off'}"
                )
                flash(f"{user.name}: saved.", "success")
            elif action == "reset_second_factor":
                user = accounts.get(state.engine, int(request.form.get("id") or 0))
                if user is None:
                    abort(404)
                second_factor.reset(state.engine, user.id)
                state.audit("reset a second factor", user.name)
                flash(
                    f"{user.name}'s second factor was removed and their sessions ended. "
                    + (
                        "They set up their authenticator app again at their next sign-in."
                        if user.role == "admin"
                        else "They sign in with their password only until they set it up again."
                    ),
                    "success",
                )
            elif action == "password":
                user = accounts.get(state.engine, int(request.form.get("id") or 0))
                if user is None:
                    abort(404)
                accounts.set_password(state.engine, user.id, request.form.get("password") or "")
                state.audit("set a new password", user.name)
                flash(f"{user.name} has a new password; their sessions were ended.", "success")
        except accounts.AccountError as problem:
            flash(str(problem), "error")
        return redirect(url_for("admin.users"))
    return render_template(
        "users.html",
        users=accounts.list_users(state.engine),
        roles=accounts.ROLES,
        descriptions=accounts.ROLE_DESCRIPTIONS,
        min_password=accounts.MIN_PASSWORD_CHARS,
        zone=state.clinic.zone,
    )


@admin.get("/audit")
@requires("audit")
def audit() -> Any:
    """Who did what, and when."""
    state = console()
    page = max(int(request.args.get("page", "1")) if request.args.get("page", "1").isdigit() else 1, 1)
    entries = accounts.audit_entries(state.engine, limit=100, offset=(page - 1) * 100)
    return render_template("audit.html", entries=entries, page=page, zone=state.clinic.zone)
