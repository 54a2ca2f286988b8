"""The text ``gradguard inspect`` prints: a summary table and the findings, per run."""

from __future__ import annotations

from gradguard.findings import listing
from gradguard.inspect.events import Run
from gradguard.inspect.judge import Inspection

__all__ = ["format_inspection"]


def _g(x: float) -> str:
    return f"{x:.4g}"


def format_inspection(inspection: Inspection) -> str:
    """The per-run summary table and findings, as printed by ``gradguard inspect``."""
    results = inspection.results
    lines = [f"gradguard inspect {inspection.logdir}: {len(results)} run(s)"]
    for result in results:
        run = result.run
        lines.append("")
        lines.append(f"run {run.name}  ({len(run.files)} event file(s))")
        for warning in run.warnings:
            lines.append(f"  warning: {warning}")
        if not result.has_gradguard:
            lines.extend(_format_foreign(run))
            continue
        s = result.summary
        rows = [
            (
                "steps seen",
                f"0..{s['last_step']} ({s['samples']} logged"
                + (f", every {s['every']} steps)" if "every" in s else ")"),
            )
        ]
        if "loss" in s:
            loss = s["loss"]
            text = f"first {_g(loss['first'])}  last {_g(loss['last'])}"
            if "best" in loss:
                text += f"  best {_g(loss['best'])} (step {loss['best_step']})"
            if loss["non_finite"]:
                text += f"  non-finite {loss['non_finite']}x"
            rows.append(("loss", text))
        if "grad_norm" in s:
            rows.append(
                ("gradient norm", f"{_g(s['grad_norm']['min'])} .. {_g(s['grad_norm']['max'])}")
            )
        if "learning_rate" in s:
            lr = s["learning_rate"]
            text = (
                _g(lr["first"])
                if lr["first"] == lr["last"]
                else (f"{_g(lr['first'])} -> {_g(lr['last'])}")
            )
            rows.append(("learning rate", text))
        if "clipping_rate" in s:
            rows.append(
                ("clipping", f"{100 * s['clipping_rate']:.1f}% of steps ({s['clipped_steps']})")
            )
        if "skipped_updates" in s:
            rows.append(("skipped updates", str(s["skipped_updates"])))
        lines.extend(f"  {name:<18}{value}" for name, value in rows)
        if s["update_ratio_median"]:
            lines.append("  update ratio (median per layer; healthy 1e-4 .. 1e-2)")
            width = max(len(n) for n in s["update_ratio_median"])
            for layer, ratio in s["update_ratio_median"].items():
                lines.append(f"    {layer:<{max(width, 16)}}  {ratio:.2e}")
        findings = result.report.findings
        if findings:
            lines.append(f"  findings judged from the scalars ({len(findings)}):")
            for f in findings:
                assert f.severity is not None
                lines.append(f"    {f.severity.value} {f.code} at step {f.step}: {f.message}")
        else:
            lines.append("  findings judged from the scalars: none")
        if result.not_judged:
            lines.append(
                f"  not judged (state not in the logged scalars): {', '.join(result.not_judged)}"
            )
        if result.logged_findings:
            codes = sorted({c for _, c, _ in result.logged_findings})
            lines.append(
                f"  findings the run logged itself: {len(result.logged_findings)} "
                f"({', '.join(codes)})"
            )
    return "\n".join(lines)


def _format_foreign(run: Run) -> list[str]:
    scalars = sorted(run.scalars)
    lines = []
    if scalars:
        lo = min(int(s.steps[0]) for s in run.scalars.values() if len(s.steps))
        hi = max(int(s.steps[-1]) for s in run.scalars.values() if len(s.steps))
        lines.append(f"  {len(scalars)} scalar tag(s), steps {lo}..{hi}: {listing(scalars, 5)}")
    if run.texts:
        lines.append(f"  {len(run.texts)} text tag(s): {listing(sorted(run.texts), 5)}")
    if run.other_tags:
        kinds = sorted(set(run.other_tags.values()))
        lines.append(
            f"  {len(run.other_tags)} other tag(s) ({', '.join(kinds)}): "
            f"{listing(sorted(run.other_tags), 5)}"
        )
    if not lines:
        lines.append("  no summaries (the files hold only file headers or graphs)")
    lines.append(
        "  no gradguard tags found: this run was not written by gradguard (gradguard's tags "
        "start with 'gradguard'); log with gradguard.TrainStep(..., log_dir=DIR) to inspect it."
    )
    return lines
