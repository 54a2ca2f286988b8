"""Findings, reports and policies: the JSON contract and deduplication."""

from __future__ import annotations

import json

import pytest

import gradguard
from gradguard.findings import Finding, Policy, Report, emit, resolve_policy


def test_every_design_code_is_in_the_catalog():
    design = """none-gradient zero-gradient missing-apply weights-unchanged update-too-small
    update-too-large exploding-gradient vanishing-gradient non-finite dead-units
    loss-not-decreasing variable-not-trained loss-broadcast checkpoint-shape-mismatch
    checkpoint-dtype-mismatch checkpoint-missing-variables checkpoint-unexpected-variables
    checkpoint-corrupt checkpoint-optimizer-config-changed
    checkpoint-optimizer-state-not-restored initial-loss-unexpected from-logits-mismatch
    cannot-overfit-batch labels-uninformative learning-rate-far-from-suggestion
    gradient-misassigned labels-out-of-range loss-sign-flipped units-identical
    batches-one-class optimizer-recreated class-weights-inverted class-weights-misnumbered
    sample-weights-misaligned vocabulary-misses-data normalization-features-pooled
    training-flag-missing
    normalization-not-adapted inputs-rescaled-twice loss-misassigned frozen-untrained
    epsilon-dominates labels-in-inputs data-exhausted padding-misaligned
    reshape-transposes channels-first-input messages-to-sender term-cancels-itself
    repeated-columns
    head-trained-to-lose loss-has-no-minimum teacher-trained weights-half-precision
    zero-token-masked
    accumulators-not-reset
    attention-mask-inverted heldout-scale-mismatch batch-frozen-at-trace
    softmax-over-one monitor-mode-inverted regularization-ignored augmentation-repeated
    validation-split-ordered activation-missing optimizer-setting-ignored
    batchnorm-statistics-stale ema-weights-stale embedding-ids-fractional
    accuracy-exact-match split-reshuffled optimizer-build-lost stateful-shuffled
    predictions-reshuffled
    loss-not-scaled hinge-on-batch-total loss-averaged-per-replica weights-copied-as-constant
    loss-summed-per-replica loss-averaged-twice
    augmentation-misaligned
    gradient-of-predictions future-tokens-visible frozen-still-trained tape-reused-after-update
    predictions-constant monitor-not-logged loss-not-logged random-frozen-at-trace
    learning-rate-frozen-at-trace loop-variable-late-bound advantage-not-stopped
    posterior-collapsed contrastive-labels-inverted sample-weights-ignored
    """.split()
    assert sorted(gradguard.CODES) == sorted(design)


def test_unknown_code_is_rejected():
    with pytest.raises(ValueError, match="unknown finding code 'nan'"):
        Finding("nan", "x")


def test_report_json_contract(tmp_path):
    report = Report(steps_observed=50)
    report.add(Finding("missing-apply", "No update.", step=12, variables=("dense/kernel",)))
    path = tmp_path / "report.json"
    text = report.to_json(str(path))
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert data["steps_observed"] == 50
    assert data["findings"] == [
        {
            "code": "missing-apply",
            "severity": "error",
            "message": "No update (see: gradguard explain missing-apply).",
            "step": 12,
            "variables": ["dense/kernel"],
            "details": {},
            "count": 1,
        }
    ]


def test_repeats_are_counted_and_overlaps_merged():
    report = Report()
    assert report.add(Finding("update-too-large", "a", step=3, variables=("d1/k",)))
    assert not report.add(Finding("update-too-large", "b", step=9, variables=("d1/k", "d2/k")))
    assert report.add(Finding("update-too-large", "c", step=9, variables=("d3/k",)))
    first, second = report.findings
    assert first.variables == ("d1/k", "d2/k")
    assert first.step == 3 and first.count == 2
    assert first.message == "b (see: gradguard explain update-too-large)"
    assert second.variables == ("d3/k",)


def test_policy_defaults_follow_severity_and_can_be_overridden():
    policy = resolve_policy({"update-too-small": "raise"})
    assert policy["non-finite"] is Policy.RAISE
    assert policy["loss-not-decreasing"] is Policy.WARN
    assert policy["update-too-small"] is Policy.RAISE
    with pytest.raises(ValueError, match="use one of 'raise', 'warn', 'ignore'"):
        resolve_policy({"non-finite": "explode"})


def test_emit_logs_new_findings_once_and_raises_after_keeping_all():
    report = Report()
    policy = resolve_policy({})
    found = [
        Finding("loss-not-decreasing", "flat."),
        Finding("non-finite", "nan."),
        Finding("zero-gradient", "zero.", severity="error"),
    ]
    with pytest.raises(gradguard.NonFiniteError) as info:
        emit(report, found, policy, raise_errors=True)
    assert info.value.finding.code == "non-finite"
    assert len(report) == 3
    emit(report, found, policy, raise_errors=True)  # judged again: no new raise, no new count
    assert report.findings[0].count == 1


def test_error_classes_by_code():
    assert isinstance(Finding("missing-apply", "m").error(), gradguard.UpdateError)
    assert isinstance(Finding("none-gradient", "m").error(), gradguard.GradientError)
    assert isinstance(Finding("checkpoint-corrupt", "m").error(), gradguard.CheckpointError)
    assert isinstance(Finding("loss-broadcast", "m").error(), gradguard.LossError)
    assert isinstance(Finding("dead-units", "m").error(), gradguard.GradGuardError)
