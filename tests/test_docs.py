"""The docs stay true to the code: generated pages are current, links resolve, CI runs the README command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_functions_page_matches_the_registry() -> None:
    # a fresh process: the registry as a user sees it, without functions registered by tests
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "sys.stdout.write(m.render())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "docs" / "make_function_docs.py")],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    current = (REPO / "docs" / "functions.md").read_text(encoding="utf-8")
    assert current == proc.stdout, "docs/functions.md is stale: run python docs/make_function_docs.py"


def test_readme_links_resolve() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (REPO / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "napari-openhcs demo" in commands[0]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands[1]


def test_readme_tour_runs_as_a_script(tmp_path: Path) -> None:
    """The README's Python tour, saved as a script and run on the synthetic plate, writes the plate."""
    from napari_openhcs.io import open_output_plate
    from napari_openhcs.microscopes.detect import open_plate
    from napari_openhcs.testing import make_synthetic_plate

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    plate = make_synthetic_plate(tmp_path / "plate", spec="tiny", seed=0)
    assert '"path/to/plate"' in code
    script = tmp_path / "tour.py"
    script.write_text(code.replace('"path/to/plate"', repr(str(plate))), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    output = Path(done.stdout.strip().splitlines()[-1])
    assert output.name.endswith(".ome.zarr") and (output / "zarr.json").is_file()
    assert sorted(open_output_plate(output).wells) == sorted(open_plate(plate).wells)
