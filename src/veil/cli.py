"""The `veil` command: a thin front-end over the pipeline that maps errors to exit codes."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import os
import signal
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ._atomic import resolved
from ._errors import AuditFailed, MissingExtra, ModelError, OutputError, VeilError
from ._types import Config, DetectPreset, FileReport, MaskShape, MaskStyle
from .audit.second_detector import SecondDetector
from .batch import Job, Skipped, walk_inputs
from .pipeline import default_output, scan_file
from .edits import PlanFile, load_plan
from .archive.choose import auto_slots, default_ledger, executor_for, resume_ledger
from .archive.driver import BatchSettings, run_batch
from .segments import SEGMENT_S, Segment
from .archive.driver import Skipped as LedgerSkipped
from .archive.ledger import Ledger, LedgerError
from .archive.pool import InlineExecutor, machine_slots
from .archive.progress import Counts
from .archive.html_report import html_path, write_html
from .archive.status import status_lines

if TYPE_CHECKING:
    from .audit.report import AuditReport


class ExitCode(enum.IntEnum):
    """Every exit status veil uses, in one place.

    USAGE covers what the user must fix before any file can be processed: a wrong command line, a
    plan file or review folder that cannot be used, and a missing optional extra or model file
    (`pip install 'veil[audit]'` fixes it as surely as a corrected option does). Every command
    reports a missing extra with 2, so a script can tell "set up veil" from "this input failed".
    """

    OK = 0  # everything asked for was done
    SOME_FAILED = 1  # at least one input failed; the others were still processed
    USAGE = 2  # the command line, a file it names, or the installation (a missing extra) was wrong
    AUDIT_FOUND = 3  # the audit found a face, a match or identifying metadata
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); files not finished were not written
    TERMINATED = 143  # SIGTERM (128 + SIGTERM); files not finished were not written


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that `with` blocks unwind and partial files go.

    A BaseException, like KeyboardInterrupt, so the batch's per-file `except Exception` cannot
    swallow it and carry on with the next file.
    """


class _BadArgument(VeilError):
    """A file named on the command line (a plan, the review folder) cannot be used: a usage error."""


# The one mapping from what stopped a command to its exit status; the first matching row wins.
_EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (Terminated, ExitCode.TERMINATED),
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
    (_BadArgument, ExitCode.USAGE),
    (ModelError, ExitCode.USAGE),  # MissingExtra included: the installation must be fixed first
    (AuditFailed, ExitCode.AUDIT_FOUND),
    (VeilError, ExitCode.SOME_FAILED),
)

_STOPPED = "files not finished were not written"


def failure(exc: BaseException, about: Path | None = None) -> tuple[str, ExitCode]:
    """The one-line message (Rich markup, names escaped) and exit code for what stopped a command.

    `about` names the file the command was working on when the error itself carries no path.
    Anything not in the table is a bug and is not handled here.
    """
    code = next((code for kind, code in _EXIT_CODES if isinstance(exc, kind)), None)
    if code is None:
        raise exc
    if code is ExitCode.TERMINATED:
        return f"[red]terminated[/] by SIGTERM; {_STOPPED}", code
    if code is ExitCode.INTERRUPTED:
        return f"[red]interrupted[/] by Ctrl-C; {_STOPPED}", code
    assert isinstance(exc, VeilError)
    where = exc.path or about
    return (f"[red]error[/] {shown(where)}: {shown(exc.message)}" if where is not None
            else f"[red]error[/] {shown(exc.message)}"), code


_F = TypeVar("_F", bound=Callable[..., Any])


def _reports_failures(command: _F) -> _F:
    """Turn whatever stops `command` (a VeilError, Ctrl-C, SIGTERM) into one line and its exit code.

    Applied to every command, so each one says the same thing with the same code for the same
    cause; anything else is a bug and keeps its traceback.
    """
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (VeilError, KeyboardInterrupt, Terminated) as exc:
            message, code = failure(exc)
            err.print(message)
            raise typer.Exit(code) from None

    return run  # type: ignore[return-value]


# Characters that would let a file name rewrite the terminal or fake a line of output: C0/C1
# controls (newline, ESC), format characters (bidi overrides such as U+202E, zero-width ones),
# line and paragraph separators, and the lone surrogates undecodable bytes become.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def printable(text: object) -> str:
    """`text` with every character that could fake or hide output shown as a Python escape.

    Used for every path and message veil prints: a name holding a newline, ESC or U+202E must
    appear as `\\n`, `\\x1b` or `\\u202e`, not start a fake line, clear the screen or reverse the
    text. An undecodable byte in a name (a lone surrogate after os.fsdecode) shows as `\\xNN`.
    """
    def one(char: str) -> str:
        if unicodedata.category(char) not in _UNPRINTABLE:
            return char
        if 0xDC80 <= ord(char) <= 0xDCFF:
            return f"\\x{ord(char) - 0xDC00:02x}"
        return char.encode("unicode_escape").decode("ascii")

    return "".join(map(one, str(text)))


def shown(text: object) -> str:
    """`printable(text)` with Rich markup escaped, for the Rich consoles."""
    return escape(printable(text))


app = typer.Typer(
    name="veil",
    help="Find and irreversibly mask every face in photos and videos, and strip identifying metadata.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: one message stays one line in logs and pipes, where Rich would wrap at 80 columns.
# emoji=False: a name holding ":smile:" is printed as written.
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

# Paths are checked per file by the pipeline, so one unreadable input fails alone (exit 1, not 2).
InputsArg = Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).",
                                                  show_default=False, readable=False)]
MaskOpt = Annotated[MaskStyle, typer.Option(
    "--mask", help="How faces are hidden. solid and noise destroy the face; mosaic and blur can be "
    "partly reversed by recognition software.")]
ShapeOpt = Annotated[MaskShape, typer.Option("--shape", help="Shape of each mask region.")]
ThresholdOpt = Annotated[Optional[float], typer.Option(
    "--threshold", min=0.01, max=0.99,
    help="Detection score threshold; lower finds more faces and more false masks. "
    "Default: the preset's calibrated value.")]
DetectOpt = Annotated[DetectPreset, typer.Option(
    "--detect", help="Detector effort: fast (photos: one pass, misses more small faces; video: "
    "detects on every 5th frame instead of every 3rd), balanced (default) or thorough (photos: "
    "also searched turned sideways and upside down).")]

RollOpt = Annotated[bool, typer.Option(
    "--roll", help="Footage from a camera that rolls (head-worn, handheld): also look for faces "
    "turned 90 and 270 degrees. About 3x the detector's time. (Photos: thorough always does, and "
    "also looks upside down.)")]


def _config(**kwargs: object) -> Config:
    try:
        return Config(**kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _warn_reversible(mask: MaskStyle) -> None:
    if mask.reversible:
        err.print(f"[yellow]warning:[/] --mask {mask.value} can be partly reversed: face-recognition "
                  "systems have matched people through blur and mosaic. Use --mask solid or "
                  "--mask noise before publishing.")


def _claim_target(job: Job, claimed: dict[Path, Path]) -> None:
    """Two inputs of one batch never share an output: the later one fails, even with --overwrite,
    rather than silently replace the copy just written for the other."""
    target = resolved(job.target if job.target is not None else default_output(job.source))
    earlier = claimed.setdefault(target, job.source)
    if earlier != job.source:
        raise OutputError(f"its output {target} is also the output of {earlier} in this batch; "
                          "give them separate output folders", job.source)


def _prepare_target(job: Job) -> None:
    if job.target is not None and not job.target.parent.exists():
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {job.target.parent}: "
                              f"{exc.strerror or exc}", job.source) from None


class _RateColumn(ProgressColumn):
    """Items per second: frames for a video, files for the batch."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=err, transient=True)


_LOG_EVERY_S = 30.0


def run_jobs(jobs: list[Job], config: Config, overwrite: bool, show_progress: bool,
             after_each: object = None, plan: PlanFile | None = None, *, slots: int = 1,
             ledger: Ledger | None = None, retry_failed: bool = False, ray: str | None = None,
             plan_digest: str | None = None, segment_s: float | None = SEGMENT_S) -> list[FileReport]:
    """Process every job (veil.archive drives it: ledger, workers, retries); a file's failure is
    reported and the batch goes on. A ModelError stops the batch instead: a missing or altered
    model would fail every remaining file the same way."""
    claimed: dict[Path, Path] = {}  # output -> the input of this batch it was written for

    def check(job: Job) -> None:
        _claim_target(job, claimed)
        _prepare_target(job)

    try:
        executor = executor_for(slots, ray)
    except ModelError:
        raise  # a missing extra: exit 2 already
    except VeilError as exc:  # a Ray cluster that cannot be reached: fix the address, then rerun
        raise _BadArgument(exc.message, exc.path) from None
    with _progress() if show_progress else _NullProgress() as progress:
        files_task = progress.add_task("files", total=None)
        if isinstance(executor, InlineExecutor):
            frames_task = progress.add_task("frames", total=None)
            executor.progress = lambda done, total: progress.update(frames_task, completed=done,
                                                                   total=total)

        def on_plan(skipped: LedgerSkipped, todo: int) -> None:
            if skipped.done:
                err.print(f"[green]skipped[/] {len(skipped.done)} file{'s' if len(skipped.done) != 1 else ''} "
                          "done earlier with the same content and settings (ledger)")
            if skipped.failed:
                err.print(f"[red]skipped[/] {len(skipped.failed)} file{'s' if len(skipped.failed) != 1 else ''} "
                          "that failed earlier (--retry-failed tries them again; veil status lists them)")
            progress.update(files_task, total=todo)

        last_line = [time.monotonic()]

        def on_result(report: FileReport, counts: Counts) -> None:
            if report.ok:
                err.print(f"[green]done[/] {shown(report.path)} -> {shown(report.output)} "
                          f"({report.faces} face{'s' if report.faces != 1 else ''} masked"
                          f"{f' over {report.frames} frames' if report.kind == 'video' else ''})"
                          + _salvage_note(report))
            else:
                err.print(f"[red]error[/] {shown(report.path)}: {shown(report.error)}")
            progress.update(files_task, completed=counts.finished, description=counts.line())
            # Without a terminal (a log of a night's run), the same line every half minute.
            if not show_progress and counts.remaining and time.monotonic() - last_line[0] > _LOG_EVERY_S:
                last_line[0] = time.monotonic()
                err.print(f"progress: {counts.line()}")

        def on_segment(source: Path, segment: Segment, done: int) -> None:
            err.print(f"[dim]segment[/] {segment.number + 1} of {segment.count} of {shown(source)} "
                      f"done ({done} of {segment.count})")

        settings = BatchSettings(config, overwrite, retry_failed, slots=slots,
                                 machine_slots=machine_slots(), plan=plan, plan_digest=plan_digest,
                                 version=_version(), segment_s=segment_s)
        hook = after_each if callable(after_each) else None
        return run_batch(jobs, settings, executor, ledger, check, on_result, hook, on_plan,
                         on_segment)


class _NullProgress:
    """Stands in for the Rich progress bar when stderr is not a terminal."""

    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        return None

    def advance(self, *args: object, **kwargs: object) -> None:
        return None

    def remove_task(self, *args: object, **kwargs: object) -> None:
        return None


def _salvage_note(report: FileReport) -> str:
    """What a --salvage copy lacks, on its own `done` line: it is shorter than the original."""
    if report.salvaged is None:
        return ""
    s = report.salvaged
    return (f" [yellow]salvaged[/]: the input ends early, {s.decoded_s:.1f} s of the "
            f"{s.stated_s:.1f} s it states were written")


def _report_skipped(skipped: Sequence[Skipped]) -> int:
    """One line per entry a folder walk passed over, saying why; returns how many were refused."""
    for entry in skipped:
        label = "[red]error[/]" if entry.refused else "[yellow]skipped[/]"
        err.print(f"{label} {shown(entry.path)}: {shown(entry.reason)}")
    return sum(entry.refused for entry in skipped)


def _summarise(reports: list[FileReport], skipped: Sequence[Skipped] = ()) -> None:
    done = sum(r.ok for r in reports)
    failed = len(reports) - done + sum(s.refused for s in skipped)
    passed_over = sum(not s.refused for s in skipped)
    faces = sum(r.faces for r in reports if r.ok)
    salvaged = sum(r.salvaged is not None for r in reports)
    colour = "green" if failed == 0 else "red"
    err.print(f"[{colour}]{done} of {len(reports)} file{'s' if len(reports) != 1 else ''} redacted"
              f"[/], {faces} face region{'s' if faces != 1 else ''} masked"
              + (f", [yellow]{salvaged} salvaged[/] (cut off: shorter than stated)" if salvaged else "")
              + (f", [yellow]{passed_over} skipped[/]" if passed_over else "")
              + (f", [red]{failed} failed[/]" if failed else ""))


def _write_report(path: Path, reports: list[FileReport], config: Config,
                  skipped: Sequence[Skipped] = ()) -> None:
    data = {
        "veil_version": _version(),
        "config": {"mask": config.mask.value, "shape": config.shape.value,
                   "detect": config.detect.value, "threshold": config.threshold,
                   "keep_metadata": config.keep_metadata, "keep_gps": config.keep_gps,
                   "salvage": config.salvage},
        "files": [r.to_json() for r in reports],
        "skipped": [{"path": str(s.path), "reason": s.reason, "refused": s.refused} for s in skipped],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("veil")
    except PackageNotFoundError:
        return "unknown"


@app.command()
@_reports_failures
def redact(
    inputs: InputsArg,
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Output file (one input) or folder. Default: <name>.redacted.<ext> "
        "beside each input.")] = None,
    mask: MaskOpt = MaskStyle.SOLID,
    shape: ShapeOpt = MaskShape.BOX,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
    keep_metadata: Annotated[bool, typer.Option(
        "--keep-metadata", help="Keep EXIF date, camera and copyright tags and the colour profile. "
        "GPS is still removed unless --keep-gps is given too.")] = False,
    keep_gps: Annotated[bool, typer.Option("--keep-gps", help="With --keep-metadata: keep GPS location too.")] = False,
    quality: Annotated[int, typer.Option("--quality", min=0, max=51,
                                         help="Video quality as x264 CRF (lower is better).")] = 18,
    drop_audio: Annotated[bool, typer.Option("--drop-audio", help="Remove the sound from videos.")] = False,
    roll: RollOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    report: Annotated[Optional[Path], typer.Option(
        "--report", help="Write a JSON report here, and an HTML page with thumbnails of the redacted "
        "outputs beside it (.html).")] = None,
    plan_file: Annotated[Optional[Path], typer.Option(
        "--plan", help="Edited `veil scan --json` output: keep faces visible, drop false masks, add "
        "missed faces (see the README). Faces it does not mention are masked as usual.")] = None,
    audit: Annotated[bool, typer.Option(
        "--audit", help="Audit each output right after writing it (needs the audit extra); exit 3 "
        "when the audit finds anything.")] = False,
    salvage: Annotated[bool, typer.Option(
        "--salvage", help="A video cut off before the length its container states (a copy that "
        "stopped, a camera that died) is written as far as it decodes, and reported as salvaged. "
        "Without it such a file fails.")] = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=0, help="Worker processes (0: fit the machine; a video counts as two "
        "since it already uses threads).")] = 0,
    ledger: Annotated[Optional[Path], typer.Option(
        "--ledger", dir_okay=False, help="The batch's SQLite ledger, which lets a rerun skip inputs "
        "already done. Default: OUT/.veil-ledger.sqlite when -o is a folder.")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Redo inputs the ledger records as failed (skipped otherwise).")] = False,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="ADDRESS", help="Run the files as Ray tasks on this cluster (auto: the one "
        "RAY_ADDRESS names or one running here, else a new local one). Needs veil[ray].")] = None,
    segment_minutes: Annotated[float, typer.Option(
        "--segment-minutes", min=0.0, help="Cut videos at least twice this long into segments at "
        "keyframes, redacted in parallel and joined; with a ledger, a stopped batch redoes only "
        "unfinished segments (0: never cut).")] = SEGMENT_S / 60,
) -> None:
    """Mask every face in INPUTS and write clean copies without identifying metadata."""
    if keep_gps and not keep_metadata:
        raise typer.BadParameter("--keep-gps only makes sense with --keep-metadata", param_hint="--keep-gps")
    config = _config(mask=mask, shape=shape, detect=detect, threshold=threshold,
                     keep_metadata=keep_metadata, keep_gps=keep_gps, quality=quality,
                     drop_audio=drop_audio, salvage=salvage, roll=roll)
    _warn_reversible(config.mask)
    walk = walk_inputs(inputs, output)
    jobs_found = walk.jobs
    refused = _report_skipped(walk.skipped)
    if not jobs_found:
        raise VeilError("no media files found in the given inputs")
    edit_plan = None
    if plan_file is not None:
        try:
            edit_plan = load_plan(plan_file)
            edit_plan.check_inputs([job.source for job in jobs_found])
        except VeilError as exc:
            raise _BadArgument(exc.message, exc.path or plan_file) from None
    audit_hook = _audit_hook(config) if audit else None
    segment_s = segment_minutes * 60 or None
    ledger_file = ledger or default_ledger(output, jobs_found)
    resumable = resume_ledger(jobs_found, segment_s) if ledger_file is None else None
    batch_ledger = _open_ledger(ledger_file or resumable, explicit=ledger is not None)
    try:
        reports = run_jobs(jobs_found, config, overwrite, show_progress=sys.stderr.isatty(),
                           plan=edit_plan, after_each=audit_hook,
                           slots=jobs or auto_slots(jobs_found, segment_s), ledger=batch_ledger,
                           retry_failed=retry_failed, ray=ray, segment_s=segment_s,
                           plan_digest=_digest(plan_file) if plan_file is not None else None)
    finally:
        if batch_ledger is not None:
            batch_ledger.close()
    if resumable is not None:  # the file is settled: nothing is left to resume
        with contextlib.suppress(OSError):
            resumable.unlink()
    _summarise(reports, walk.skipped)
    if report is not None:
        _write_report(report, reports, config, walk.skipped)
        write_html(html_path(report), reports)
    if refused or not all(r.ok for r in reports) or any(r.audit and "error" in r.audit for r in reports):
        raise typer.Exit(ExitCode.SOME_FAILED)
    if any(r.audit and not r.audit.get("clean", True) for r in reports):
        raise typer.Exit(ExitCode.AUDIT_FOUND)
    raise typer.Exit(ExitCode.OK)


def _open_ledger(path: Path | None, explicit: bool) -> Ledger | None:
    """The batch's ledger (its folder is made, as the outputs' would be); an unusable one is a
    usage error, before any work. An output folder veil cannot write gets no default ledger: each
    file then fails alone, saying why, as without a ledger."""
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path.parent}: {exc.strerror or exc}") from None
    if not explicit and not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        err.print(f"[yellow]warning:[/] {shown(path.parent)} is not writable: no ledger, so this "
                  "batch cannot be resumed")
        return None
    try:
        return Ledger.open(path)
    except LedgerError as exc:
        raise _BadArgument(exc.message, exc.path) from None


def _digest(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise _BadArgument(f"cannot read the plan: {exc.strerror or exc}", path) from None


@app.command()
@_reports_failures
def status(
    place: Annotated[Path, typer.Argument(help="An output folder of `veil redact -o`, or a ledger file.",
                                          show_default=False)],
) -> None:
    """Summarise a batch from its ledger: files done, failed (with their errors), left to do."""
    try:
        lines = list(status_lines(place))
    except LedgerError as exc:
        raise _BadArgument(exc.message, exc.path) from None
    for line in lines:
        sys.stdout.write(printable(line) + "\n")
    raise typer.Exit(ExitCode.OK)


def _audit_hook(config: Config) -> object:
    """`redact --audit`: audit each written output; a missing extra stops before any work."""
    from .audit import audit_file, require_models

    try:
        require_models()
    except ModelError as exc:
        raise MissingExtra(f"--audit: {exc.message}") from None

    def after_each(file_report: FileReport) -> FileReport:
        if not file_report.ok or file_report.output is None:
            return file_report
        try:
            result = audit_file(file_report.path, file_report.output, config)
        except VeilError as exc:
            # The output was written; say plainly that it was not audited rather than fail it.
            err.print(f"[red]audit not done[/] {shown(file_report.output)}: {shown(exc.message)}")
            return replace(file_report, audit={"error": exc.message})
        colour = "green" if result.clean else "red"
        err.print(f"[{colour}]audit[/] " + escape(_summary(result)))
        return replace(file_report, audit=result.to_json())

    return after_each


def _summary(result: AuditReport, max_lines: int = 12) -> str:
    """The audit's summary with every line printable; the file's name is made printable first, so
    a newline inside it cannot split the verdict line."""
    text = result.summary(max_lines=max_lines).replace(str(result.redacted), printable(result.redacted))
    return "\n".join(printable(line) for line in text.splitlines())


@app.command("audit")
@_reports_failures
def audit_command(
    original: Annotated[Path, typer.Argument(help="The file before redaction.", show_default=False)],
    redacted: Annotated[Path, typer.Argument(help="The redacted file to check.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print every finding as one JSON object.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the JSON here.")] = None,
    all_frames: Annotated[bool, typer.Option(
        "--all-frames", help="Videos: check every frame, not a sample.")] = False,
    second_detector: Annotated[SecondDetector, typer.Option(
        "--second-detector", help="dlib detector run on the output: hog (fast), cnn (MMOD; "
        "10-20 s per photo on a CPU) or both.")] = SecondDetector.HOG,
    shape: ShapeOpt = MaskShape.BOX,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
    salvage: Annotated[bool, typer.Option(
        "--salvage", help="ORIGINAL is a cut-off video that `veil redact --salvage` wrote: compare "
        "the part of it that decodes.")] = False,
) -> None:
    """Check that REDACTED no longer identifies anyone in ORIGINAL: surviving pixels, faces a second
    detector finds, faces a recogniser can still match, identifying metadata. Exit 3 if anything
    is found, 0 if clean."""
    from .audit import audit_file

    config = _config(shape=shape, detect=detect, threshold=threshold, salvage=salvage)
    try:
        result = audit_file(original, redacted, config, second_detector=second_detector,
                            all_frames=all_frames)
    except VeilError as exc:
        if exc.path is None:
            raise type(exc)(exc.message, redacted) from None
        raise
    data = result.to_json()
    if report is not None:
        report.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        sys.stdout.write(_summary(result, max_lines=50) + "\n")
    raise typer.Exit(ExitCode.OK if result.clean else ExitCode.AUDIT_FOUND)


@app.command()
@_reports_failures
def scan(
    inputs: InputsArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line per image or frame.")] = False,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
    shape: ShapeOpt = MaskShape.BOX,
    roll: RollOpt = False,
) -> None:
    """Report the faces veil finds and the regions it would mask, without writing anything."""
    config = _config(detect=detect, threshold=threshold, shape=shape, roll=roll)
    walk = walk_inputs(inputs, None)
    failed = _report_skipped(walk.skipped)
    for job in walk.jobs:
        try:
            for frame in scan_file(job.source, config):
                if as_json:
                    sys.stdout.write(json.dumps(frame.to_json()) + "\n")
                    sys.stdout.flush()
                elif frame.frame == 0 or frame.faces:
                    where = f" frame {frame.frame}" if frame.time is not None else ""
                    out.print(f"{shown(frame.path)}{where}: {len(frame.faces)} face"
                              f"{'s' if len(frame.faces) != 1 else ''}")
        except VeilError as exc:
            failed += 1
            err.print(failure(exc, job.source)[0])
    raise typer.Exit(ExitCode.SOME_FAILED if failed else ExitCode.OK)


@app.command("eval")
@_reports_failures
def eval_command(
    annotations: Annotated[Path, typer.Option(
        "--annotations", exists=True, dir_okay=False,
        help="Ground truth in gt.jsonl format (one JSON object per image).")],
    images: Annotated[Optional[Path], typer.Option(
        "--images", file_okay=False, help="Folder the annotation paths are relative to. "
        "Default: the annotations' folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Score only the first N images (0: all).")] = 0,
) -> None:
    """Measure recall, covered recall, precision and masked area against annotated faces."""
    from .evaluate import evaluate, format_table, read_annotations

    config = _config(detect=detect, threshold=threshold)
    try:
        truths = read_annotations(annotations)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--annotations") from None
    if limit:
        truths = truths[:limit]
    try:
        report = evaluate(truths, images or annotations.parent, config, label=detect.value)
    except VeilError as exc:
        if exc.path is None:
            raise type(exc)(exc.message, annotations) from None
        raise
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        out.print(format_table([report]), markup=False)
    raise typer.Exit(ExitCode.OK)


@app.command()
@_reports_failures
def review(
    target: Annotated[Path, typer.Argument(help="A picture, or a folder of pictures (searched "
                                           "recursively). Default: the current folder.")] = Path("."),
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", file_okay=False,
        help="A folder the app may also save redacted copies to (default: beside each original).")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port on 127.0.0.1 (default: a free one).")] = 0,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the web browser.")] = False,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
) -> None:
    """Check, fix and export redactions in a local web page (served on 127.0.0.1 only)."""
    try:
        from .web import Library, ReviewServer
    except ImportError as exc:
        raise MissingExtra(f"the review app needs its extra: pip install 'veil[review]' ({exc})") from None
    import webbrowser

    config = _config(detect=detect, threshold=threshold)
    try:
        library = Library.open(target, config, output)
    except VeilError as exc:
        raise _BadArgument(exc.message, exc.path or target) from None
    if not library.items:
        raise VeilError(f"no pictures found in {target}")
    server = ReviewServer(library, port)
    # Plain writes: a console library could wrap the long address.
    sys.stdout.write(f"veil review: {len(library.items)} picture{'s' if len(library.items) != 1 else ''} "
                     f"in {printable(library.root)}\nOpen this address in your browser (it holds a one-time key; "
                     f"do not share it):\n\n  {server.url}\n\nPress Ctrl+C to stop.\n")
    sys.stdout.flush()
    if open_browser:
        webbrowser.open(server.url)
    server.run()


app.command("serve", help="Same as `veil review`.")(review)


@app.command("live")
@_reports_failures
def live_command(
    streams: Annotated[list[str], typer.Argument(
        help="INPUT OUTPUT (with --listen: OUTPUT only). INPUT: an rtmp://, rtsp://, http(s):// "
        "(HLS), udp:// or srt:// URL, - for MPEG-TS on stdin, or a file (played at its own rate). "
        "OUTPUT: an rtmp:// URL, udp:// or srt:// (MPEG-TS), - (MPEG-TS on stdout), a folder or "
        ".m3u8 (HLS), or a .ts/.mkv/.mp4/.flv file.", metavar="[INPUT] OUTPUT")],
    delay: Annotated[float, typer.Option(
        "--delay", min=0, max=10, help="Seconds every frame is held, so a face found late is "
        "masked on the frames before too.")] = 0.5,
    listen: Annotated[Optional[str], typer.Option(
        "--listen", help="Wait for a publisher at this rtmp://127.0.0.1:PORT/APP/KEY address.")] = None,
    record: Annotated[Optional[Path], typer.Option(
        "--record", help="Also write the masked stream to this file (.ts, .mkv, .mp4, .flv); it "
        "stays playable if veil is stopped.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a JSON report here at the end.")] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="Read the input at its own frame rate (files always are).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.5, help="Seconds to wait for the input, and the longest stall or "
        "reconnection before stopping.")] = 10.0,
    mask: MaskOpt = MaskStyle.SOLID,
    shape: ShapeOpt = MaskShape.BOX,
    detect: DetectOpt = DetectPreset.BALANCED,
    threshold: ThresholdOpt = None,
    quality: Annotated[int, typer.Option("--quality", min=0, max=51, help="x264 CRF.")] = 23,
    drop_audio: Annotated[bool, typer.Option("--drop-audio", help="Send no sound.")] = False,
    keep_scale: Annotated[bool, typer.Option(
        "--keep-scale", help="When veil falls behind, send curtains rather than search at a "
                             "smaller scale (which finds fewer small faces).")] = False,
) -> None:
    """Mask every face in a live stream before it leaves this machine (see README, Live streams)."""
    from .live import LiveOptions, run_live

    if len(streams) != (1 if listen else 2):
        raise typer.BadParameter("give INPUT and OUTPUT, or --listen URL and OUTPUT only",
                                 param_hint="[INPUT] OUTPUT")
    source, target = (listen, streams[0]) if listen else (streams[0], streams[1])
    config = _config(mask=mask, shape=shape, detect=detect, threshold=threshold, quality=quality,
                     drop_audio=drop_audio)
    _warn_reversible(config.mask)
    tty = sys.stderr.isatty()
    options = LiveOptions(source, target, delay, str(record) if record else None,
                          str(report) if report else None, listen=listen is not None,
                          realtime=realtime, timeout_s=timeout, config=config,
                          degrade=not keep_scale,
                          progress=(lambda line: err.file.write(f"\r{line}\x1b[K")) if tty else None)
    try:
        result = run_live(options)
    except (KeyboardInterrupt, Terminated) as exc:
        name = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        err.print(f"\nstopped by {name}; the output and the recording were finalised")
        raise typer.Exit(ExitCode.INTERRUPTED if name == "Ctrl-C" else ExitCode.TERMINATED) from None
    if tty:
        err.file.write("\n")
    err.print(f"live: {result.frames_out} frames out ({result.frames_masked} checked, "
              f"{result.repeated_frames} repeated, {result.curtain_frames} curtain"
              + (f", {result.reduced_scale_frames} checked at a reduced scale"
                 if result.reduced_scale_frames else "") + "), "
              f"added latency p50 {result.latency_ms['p50']:.0f} ms; {shown(result.stopped_by)}")
    raise typer.Exit(ExitCode.OK)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: unwind the main thread like Ctrl-C does, once.

    A second SIGTERM during that unwinding is ignored, so it cannot cut the clean-up of a partial
    file short; SIGKILL still stops veil at once.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def main() -> None:
    """Console-script entry point; usage errors exit 2 (Click's convention).

    Commands report their own interruptions (see `_reports_failures`); this catches those that
    arrive outside a command, e.g. while Python is still importing the detector.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app()
    except (KeyboardInterrupt, Terminated) as exc:
        message, code = failure(exc)
        err.print(message)
        sys.exit(code)


__all__ = ["app", "main", "ExitCode", "Terminated", "failure", "printable", "default_output"]
