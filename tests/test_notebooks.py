"""The notebooks run top to bottom and still show what they teach; the guide covers every code.

Each notebook in notebooks/ is executed with nbclient in a kernel of this very Python (a kernel
spec written to a temporary directory, so nothing is installed into the user's Jupyter), and its
outputs are checked for the findings it demonstrates: a notebook that runs but silently stops
diagnosing fails here, and so does one whose fixed loops start raising false alarms.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

import gradguard
from gradguard.findings import Finding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
GUIDE = os.path.join(REPO, "gradguard", "guide.md")
KERNEL = "gradguard-tests"


@dataclasses.dataclass(frozen=True)
class Expect:
    """What a notebook's outputs must show."""

    texts: tuple[str, ...]  # each must appear somewhere in the outputs
    healthy: int  # "gradguard: no findings" lines: the fixed loops, each silent
    images: int  # plots rendered


EXPECTED = {
    "01_quickstart.ipynb": Expect(
        texts=(
            "gradguard: no findings in 320 steps.",
            "traced 2 times",
            "gradguard_update_ratio/hidden_1",
            "findings judged from the scalars: none",
            "UpdateError at step 5",
            "code:      update-too-small",
            "(see: gradguard explain update-too-small)",
            "gradguard: no findings in 80 steps.",  # GuardCallback in fit
            "clipped-rate scalar logged: True",
            "fit: [update-too-small]",
        ),
        healthy=2,
        images=1,
    ),
    "02_why_is_my_model_not_learning.ipynb": Expect(
        texts=(
            "[missing-apply]",
            "[update-too-small]",
            "[weights-unchanged]",
            "[loss-not-decreasing]",
            "[update-too-large]",
            "GradientError",
            "[none-gradient]",
            "tf.numpy_function",
            "[loss-broadcast]",
            "[exploding-gradient]",
            "gradguard raised NonFiniteError",
            "[vanishing-gradient]",
            "[non-finite] The loss became NaN/Inf",
            "weights all finite: True",
            "(see: gradguard explain missing-apply).",
        ),
        # apply added, Adam(1e-2), loss in TF ops, labels reshaped, two clips, ReLU + He,
        # batch norm, from_logits.
        healthy=9,
        images=7,
    ),
    "03_checkpoints.ipynb": Expect(
        texts=(
            "restored, no findings.",
            "weights identical: True",
            "checkpoint-missing-variables",
            "checkpoint-shape-mismatch",
            "checkpoint-dtype-mismatch",
            "checkpoint-optimizer-config-changed",
            "learning rate after restore: 0.001",
            "checkpoint-optimizer-state-not-restored",
            "Checksum does not match",
            "checkpoint-corrupt",
            "restored ckpt-2",
            "resuming at step 40",
            "left-overs of the interrupted save: []",
        ),
        healthy=0,
        images=1,
    ),
    "04_gradient_descent_variants.ipynb": Expect(
        texts=(
            "[update-too-large]",
            "[exploding-gradient]",
            "[loss-not-decreasing]",
        ),
        healthy=0,
        images=3,
    ),
    "05_preflight.ipynb": Expect(
        texts=(
            "weights and optimizer state identical: True",
            "lr_find suggests",
            "Adam: suggestion",
            "warning labels-uninformative",
            "warning cannot-overfit-batch: At the learning rate in use (1e-10)",
            "info    learning-rate-far-from-suggestion",
            "error   from-logits-mismatch",
            "applies softmax a second time",
            "info The model's outputs are probabilities",
            "set from_logits=True",
            "warning initial-loss-unexpected",
            "confidently wrong",
            "warning none-gradient",
            "side/kernel",
            "the targets are not centered",
            "(see: gradguard explain labels-uninformative).",
        ),
        # The healthy model, and the regressor with standardized targets.
        healthy=2,
        images=2,
    ),
}


def test_every_notebook_is_tested_and_stored_without_outputs() -> None:
    stored = sorted(f for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb"))
    assert stored == sorted(EXPECTED)
    for name in stored:
        notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{name} is stored with outputs; clear them before committing "
                    "(Jupyter: Edit > Clear Outputs of All Cells)."
                )


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernel spec that starts ipykernel with the Python running the tests (the .venv's)."""
    directory = tmp_path_factory.mktemp("kernels")
    spec = directory / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "gradguard tests",
                "language": "python",
            }
        )
    )
    return str(directory)


def execute(path: str, kernel_dir: str) -> Any:
    """Runs a notebook top to bottom; raises CellExecutionError at the first failing cell."""
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dir])
    )
    env = dict(os.environ)
    # Figures as PNG outputs, whatever backend the environment asks for; never a window.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=300,
        resources={"metadata": {"path": NOTEBOOKS}},
    )
    client.execute(env=env)
    return notebook


def outputs_of(notebook: Any) -> tuple[str, int]:
    """All text the notebook printed or displayed, and the number of images it displayed."""
    texts, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                texts.append(output.data.get("text/plain", ""))
                images += "image/png" in output.data
    return "".join(texts), images


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_shows_its_findings(name: str, kernel_dir: str) -> None:
    notebook = execute(os.path.join(NOTEBOOKS, name), kernel_dir)
    text, images = outputs_of(notebook)
    expect = EXPECTED[name]
    missing = [t for t in expect.texts if t not in text]
    assert not missing, f"{name} no longer shows {missing}; its outputs:\n{text[-6000:]}"
    assert text.count("gradguard: no findings") == expect.healthy, text[-6000:]
    assert images == expect.images
    if name.startswith("04"):
        # The table: the variant that diverges is named, every other one is silent.
        variant = re.compile(r"(batch|mini|stochastic|momentum|Adam|schedule)[^\[]*$")
        rows = [line for line in text.splitlines() if variant.match(line)]
        assert len(rows) == 7, rows
        for row in rows:
            diverges = row.startswith("stochastic: SGD(0.1)")
            assert row.endswith("none") != diverges, row
            if diverges:
                assert "update-too-large" in row and "exploding-gradient" in row, row


# -- the troubleshooting guide ------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _guide() -> str:
    with open(GUIDE, encoding="utf-8") as f:
        return f.read()


def _anchors(markdown: str) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)}


def test_guide_has_a_section_for_every_code() -> None:
    anchors = _anchors(_guide())
    missing = [code for code in gradguard.CODES if code not in anchors]
    assert not missing, f"gradguard/guide.md has no section for {missing}"


def test_guide_sections_say_what_to_do() -> None:
    sections = re.split(r"^## ", _guide(), flags=re.MULTILINE)
    by_code = {s.split("\n", 1)[0].strip(): s for s in sections}
    for code in gradguard.CODES:
        for part in (
            "**Meaning.**",
            "**Common causes.**",
            "**How to confirm.**",
            "**How to fix.**",
        ):
            assert part in by_code[code], f"section {code} has no {part}"


def test_guide_links_resolve() -> None:
    guide = _guide()
    anchors = _anchors(guide)
    broken = [a for a in re.findall(r"\]\(#([^)]+)\)", guide) if a not in anchors]
    assert not broken, broken


@pytest.mark.parametrize("code", sorted(gradguard.CODES))
def test_every_message_ends_with_a_pointer_to_its_section(code: str) -> None:
    pointer = f"(see: gradguard explain {code})"
    assert code in _anchors(_guide())
    finding = Finding(code, "Something was seen; do this.")
    assert finding.message == f"Something was seen; do this {pointer}."
    # Once, and still last, when a finding is rebuilt or has text added after it.
    again = dataclasses.replace(finding, message=finding.message + " Skipped.")
    assert again.message.count(pointer) == 1 and again.message.endswith(f"Skipped {pointer}.")
    assert str(finding.error()).endswith(f"{pointer}.")


def test_readme_python_blocks_run_as_written(tmp_path: Any) -> None:
    """The README's Python blocks, in order, in one namespace (each builds on the ones before),
    in a fresh process working in an empty directory."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) >= 5
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("gradguard:") >= 3, out.stdout  # the reports printed
