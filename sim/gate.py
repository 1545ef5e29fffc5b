"""`sim gate`: compare a candidate run report with the baseline and pass or fail it.

Usage::

    sim gate --candidate reports/run_seed42.json         # baseline: reports/baseline.json
    sim gate --baseline old.json --candidate new.json --tolerance 0.05 --abs-floor total_trades=1
    sim gate --baseline-from-mlflow --candidate new.json   # newest run tagged baseline=true
    sim gate --update-baseline --candidate new.json --reason "fee model now charges maker rebates"

Rule, for each regression key: PASS if ``|candidate - baseline| <= max(tolerance * |baseline|,
floor[key])``. The relative tolerance (default 0.02, i.e. 2 %) alone would fail any change of a
metric whose baseline is near zero, so each key has an absolute floor (`DEFAULT_FLOORS`):

* `total_trades` 0: counts move by whole trades, so the relative tolerance decides (2 % of 50
  trades allows 1); with a baseline of 0 trades any new trade fails, on purpose;
* `win_rate`, `total_pnl_pct`, `max_drawdown_pct` 0.05 percentage points: below what anyone
  reads off a report, above float noise;
* `profit_factor` 0.02: the ratio is noisy when few trades close at a loss.

Exit codes: 0 PASS, 1 FAIL, 2 ERROR (missing or corrupt file, missing key, unknown
`schema_version`, reports from different data sets; one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signals.errors import ConfigError, DataError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = PROJECT_ROOT / "reports" / "baseline.json"
SCHEMA_VERSION = 1
"""Report schema the gate understands (`sim.report.SCHEMA_VERSION`)."""

REGRESSION_KEYS = ("total_trades", "win_rate", "total_pnl_pct", "max_drawdown_pct", "profit_factor")
"""Same as `sim.metrics.REGRESSION_KEYS`; repeated so `sim gate` does not import the engine."""

DEFAULT_TOLERANCE = 0.02
DEFAULT_FLOORS: dict[str, float] = {
    "total_trades": 0.0,
    "win_rate": 0.05,
    "total_pnl_pct": 0.05,
    "max_drawdown_pct": 0.05,
    "profit_factor": 0.02,
}
"""Absolute floor of the allowed difference per key, in the key's own units (see module doc)."""

EXIT_PASS, EXIT_FAIL = 0, 1


@dataclass(frozen=True)
class GateRow:
    """One regression key's comparison."""

    metric: str
    baseline: float
    candidate: float
    allowed: float  # largest |candidate - baseline| that passes
    passed: bool

    @property
    def delta(self) -> float:
        """Return `candidate - baseline`."""
        return self.candidate - self.baseline

    @property
    def change_pct(self) -> float | None:
        """Return the change in % of |baseline|; None when the baseline is 0 and they differ."""
        if self.baseline == 0.0:
            return 0.0 if self.candidate == 0.0 else None
        return self.delta / abs(self.baseline) * 100.0


@dataclass(frozen=True)
class GateResult:
    """The gate's rows (in `REGRESSION_KEYS` order) and verdict."""

    rows: tuple[GateRow, ...]
    tolerance: float
    floors: Mapping[str, float]

    @property
    def passed(self) -> bool:
        """Return True when every row passed."""
        return all(row.passed for row in self.rows)

    @property
    def verdict(self) -> str:
        """Return "PASS" or "FAIL"."""
        return "PASS" if self.passed else "FAIL"


# --------------------------------------------------------------------------------------------
# validation and comparison (pure)
# --------------------------------------------------------------------------------------------


def check_report(doc: Any, label: str) -> None:
    """Raise `DataError` unless `doc` is a schema-1 report or baseline with all regression keys.

    `label` names the document in the message, e.g. "baseline `reports/baseline.json`".
    """
    if not isinstance(doc, dict):
        msg = f"{label} must be a JSON object, was {type(doc).__name__}"
        raise DataError(msg)
    if "schema_version" not in doc:
        msg = f"{label} must have key `schema_version`, was missing"
        raise DataError(msg)
    if doc["schema_version"] != SCHEMA_VERSION:
        msg = (
            f"`schema_version` of {label} must be {SCHEMA_VERSION}, was {doc['schema_version']!r} "
            "(regenerate it with this version of `sim run`)"
        )
        raise DataError(msg)
    for section in ("metadata", "regression_keys"):
        if not isinstance(doc.get(section), dict):
            msg = (
                f"{label} must have an object `{section}`, was {_shown(doc.get(section, _MISSING))}"
            )
            raise DataError(msg)
    if not isinstance(doc["metadata"].get("data_hash"), str):
        shown = _shown(doc["metadata"].get("data_hash", _MISSING))
        msg = f"{label} must have a string `metadata.data_hash`, was {shown}"
        raise DataError(msg)
    keys = doc["regression_keys"]
    for key in REGRESSION_KEYS:
        value = keys.get(key, _MISSING)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            msg = f"{label} must have a finite number `regression_keys.{key}`, was {_shown(value)}"
            raise DataError(msg)


_MISSING = object()


def _shown(value: Any) -> str:
    return "missing" if value is _MISSING else json.dumps(value)[:60]


def check_floors(tolerance: float, floors: Mapping[str, float]) -> dict[str, float]:
    """Return `DEFAULT_FLOORS` updated by `floors`; raise `ConfigError` on bad values or keys."""
    if not math.isfinite(tolerance) or tolerance < 0.0:
        msg = f"`--tolerance` must be a fraction >= 0 (0.02 = 2 %), was {tolerance}"
        raise ConfigError(msg)
    out = dict(DEFAULT_FLOORS)
    for key, value in floors.items():
        if key not in DEFAULT_FLOORS:
            msg = f"`--abs-floor` key must be one of {', '.join(REGRESSION_KEYS)}, was {key!r}"
            raise ConfigError(msg)
        if not math.isfinite(value) or value < 0.0:
            msg = f"`--abs-floor {key}` must be >= 0, was {value}"
            raise ConfigError(msg)
        out[key] = float(value)
    return out


def compare(
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    tolerance: float = DEFAULT_TOLERANCE,
    floors: Mapping[str, float] | None = None,
) -> GateResult:
    """Compare the regression keys of `candidate` with `baseline`.

    Parameters
    ----------
    baseline, candidate
        Report dicts (or baseline files) with `schema_version` 1, `metadata.data_hash` and
        `regression_keys`.
    tolerance
        Allowed relative difference, a fraction of |baseline| (0.02 = 2 %).
    floors
        Absolute floors per key; missing keys take `DEFAULT_FLOORS`.

    Returns
    -------
    GateResult
        A row per regression key; the verdict is PASS when
        ``|candidate - baseline| <= max(tolerance * |baseline|, floor)`` for every key.

    Raises
    ------
    DataError
        When either document is malformed, or the two were computed on different data sets.
    ConfigError
        When `tolerance` or a floor is negative, or a floor names an unknown key.
    """
    merged = check_floors(tolerance, floors or {})
    check_report(baseline, "baseline")
    check_report(candidate, "candidate")
    base_hash = baseline["metadata"]["data_hash"]
    cand_hash = candidate["metadata"]["data_hash"]
    if base_hash != cand_hash:
        msg = (
            "baseline and candidate must come from the same data set, `metadata.data_hash` was "
            f"{base_hash} (baseline) and {cand_hash} (candidate)"
        )
        raise DataError(msg)
    rows = []
    for key in REGRESSION_KEYS:
        base = float(baseline["regression_keys"][key])
        cand = float(candidate["regression_keys"][key])
        allowed = max(tolerance * abs(base), merged[key])
        rows.append(GateRow(key, base, cand, allowed, abs(cand - base) <= allowed))
    return GateResult(rows=tuple(rows), tolerance=tolerance, floors=merged)


def _num(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.4f}"


def format_result(result: GateResult) -> str:
    """Return the result as a text table followed by the `PASS`/`FAIL` line."""
    header = ("metric", "baseline", "candidate", "change %", "allowed", "verdict")
    lines = [header]
    for row in result.rows:
        change = row.change_pct
        lines.append(
            (
                row.metric,
                _num(row.baseline),
                _num(row.candidate),
                "n/a (base 0)" if change is None else f"{change:+.2f}",
                f"±{row.allowed:.4f}",
                "ok" if row.passed else "FAIL",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    failed = [row.metric for row in result.rows if not row.passed]
    summary = f"{result.verdict}: {len(result.rows) - len(failed)}/{len(result.rows)} keys within"
    summary += f" max({result.tolerance:.2%} of baseline, floor)"
    if failed:
        summary += f"; out of tolerance: {', '.join(failed)}"
    return "\n".join([*text, summary])


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def load_report(path: str | Path, role: str) -> dict[str, Any]:
    """Read and check a report or baseline JSON file; `role` is "baseline" or "candidate"."""
    p = Path(path)
    label = f"{role} `{p}`"
    try:
        text = p.read_text()
    except FileNotFoundError as e:
        msg = f"{role} file `{p}` must exist, was missing"
        raise DataError(msg) from e
    except OSError as e:
        msg = f"{role} file `{p}` must be readable, was not: {e.strerror}"
        raise DataError(msg) from e
    except UnicodeDecodeError as e:
        msg = f"{role} file `{p}` must be UTF-8 JSON, was not (byte {e.start}: {e.reason})"
        raise DataError(msg) from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"{label} must be valid JSON, was not: {e.msg} at line {e.lineno} column {e.colno}"
        raise DataError(msg) from e
    check_report(doc, label)
    return doc


def baseline_document(
    candidate: Mapping[str, Any], reason: str, previous: Mapping[str, Any] | None, source: str
) -> dict[str, Any]:
    """Return a new baseline built from `candidate`, recording `reason` and the previous keys."""
    prior = None
    if previous is not None:
        prior_meta = previous.get("metadata", {})
        prior = {
            "regression_keys": dict(previous["regression_keys"]),
            "reason": previous.get("reason"),
            "config_hash": prior_meta.get("config_hash"),
            "data_hash": prior_meta.get("data_hash"),
            "git_commit": prior_meta.get("git_commit"),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "baseline",
        "reason": reason,
        "source": source,
        "metadata": dict(candidate["metadata"]),
        "regression_keys": {key: candidate["regression_keys"][key] for key in REGRESSION_KEYS},
        "summary": dict(candidate.get("summary", {})),
        "previous": prior,
    }


def write_baseline(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write `doc` as canonical JSON to `path` atomically (temp file, then rename)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parse_floor(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError(text)
        return key.strip(), float(value)
    except ValueError as e:
        msg = f"`--abs-floor` must look like KEY=VALUE (e.g. total_trades=1), was {text!r}"
        raise ConfigError(msg) from e


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_gate(args: argparse.Namespace) -> int:
    """Run `sim gate`: compare, or with `--update-baseline` write a new baseline."""
    if args.baseline_from_mlflow and args.baseline is not None:
        msg = "`--baseline` and `--baseline-from-mlflow` must not be used together, both were given"
        raise ConfigError(msg)
    floors = dict(_parse_floor(item) for item in args.abs_floor)
    merged = check_floors(args.tolerance, floors)
    candidate = load_report(args.candidate, "candidate")

    if args.update_baseline:
        return _update_baseline(args, candidate, merged)
    if args.reason is not None:
        msg = "`--reason` must only be given with `--update-baseline`, was given without it"
        raise ConfigError(msg)

    if args.baseline_from_mlflow:
        from sim.tracking import find_baseline_run, resolve_tracking_uri  # noqa: PLC0415

        uri = resolve_tracking_uri(args.tracking_uri)
        baseline = find_baseline_run(uri)
        source = f"MLflow run tagged baseline=true at {uri}"
        check_report(baseline, f"baseline from {source}")
    else:
        path = Path(args.baseline) if args.baseline is not None else DEFAULT_BASELINE
        baseline = load_report(path, "baseline")
        source = str(path)
    result = compare(baseline, candidate, args.tolerance, merged)
    _write(f"baseline   {source}")
    _write(f"candidate  {args.candidate}")
    _write(format_result(result))
    return EXIT_PASS if result.passed else EXIT_FAIL


def _update_baseline(
    args: argparse.Namespace, candidate: dict[str, Any], floors: dict[str, float]
) -> int:
    if args.baseline_from_mlflow:
        msg = "`--update-baseline` writes a file and must not be used with `--baseline-from-mlflow`"
        raise ConfigError(msg)
    reason = (args.reason or "").strip()
    if not reason:
        msg = '`--update-baseline` must come with `--reason "why the numbers changed"`, was missing'
        raise ConfigError(msg)
    path = Path(args.baseline) if args.baseline is not None else DEFAULT_BASELINE
    previous = load_report(path, "previous baseline") if path.exists() else None
    if previous is not None:
        if previous["metadata"]["data_hash"] == candidate["metadata"]["data_hash"]:
            _write(f"previous baseline {path} vs candidate {args.candidate}:")
            _write(format_result(compare(previous, candidate, args.tolerance, floors)))
        else:
            _write(
                f"data set changed: {previous['metadata']['data_hash']} -> "
                f"{candidate['metadata']['data_hash']}"
            )
    doc = baseline_document(candidate, reason, previous, str(args.candidate))
    write_baseline(doc, path)
    _write(f"baseline written to {path} (reason: {reason})")
    return EXIT_PASS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `gate` subcommand to the `sim` parser."""
    default = DEFAULT_BASELINE.relative_to(PROJECT_ROOT)
    floors = ", ".join(f"{k}={v:g}" for k, v in DEFAULT_FLOORS.items())
    gate = subparsers.add_parser(
        "gate",
        help="compare a run report with the baseline (exit 0 pass, 1 fail, 2 error)",
        description=(
            "Pass when |candidate - baseline| <= max(tolerance * |baseline|, floor) for each of "
            f"{', '.join(REGRESSION_KEYS)}. Exit 0 PASS, 1 FAIL, 2 ERROR."
        ),
    )
    gate.add_argument("--candidate", required=True, help="report JSON of the run under test")
    gate.add_argument(
        "--baseline",
        default=None,
        help=f"baseline JSON (default: {default}); with --update-baseline, the file to write",
    )
    gate.add_argument(
        "--baseline-from-mlflow",
        action="store_true",
        help="use the report of the newest MLflow run tagged baseline=true",
    )
    gate.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI for --baseline-from-mlflow (default: $MLFLOW_TRACKING_URI "
        "or <project>/mlflow.db)",
    )
    gate.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"allowed relative change, fraction of |baseline| (default {DEFAULT_TOLERANCE})",
    )
    gate.add_argument(
        "--abs-floor",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"absolute floor of the allowed change for one key, repeatable (defaults: {floors})",
    )
    gate.add_argument(
        "--update-baseline",
        action="store_true",
        help="write the candidate's keys as the new baseline (needs --reason)",
    )
    gate.add_argument("--reason", default=None, help="why the baseline changes (recorded in it)")
    gate.set_defaults(handler=cmd_gate)
