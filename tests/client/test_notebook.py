"""The example notebook, run by the headless command docs/client.md gives (``jupyter execute``)
against ``bookql serve``: the documented way to check it, not only the library call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ipykernel.kernelspec import write_kernel_spec

from tests.accounts.test_accounts import REGISTER
from tests.conftest import ScratchDatabase
from tests.support.live import post_graphql, running_server, server_env

pytestmark = pytest.mark.slow  # jupyter execute against a live server

NOTEBOOK = Path(__file__).parents[2] / "examples" / "training_data.ipynb"
PASSWORD = "correct horse battery"


@pytest.mark.parametrize("seeded_db", ["sqlite"], indirect=True)
def test_jupyter_execute_runs_the_notebook(seeded_db: ScratchDatabase, tmp_path: Path) -> None:
    jupyter = Path(sys.executable).with_name("jupyter")
    assert jupyter.exists(), "nbclient (dev and notebook extras) installs `jupyter execute`"
    # A python3 kernel of this interpreter, whatever kernels the machine has installed.
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")
    work = tmp_path / "examples"
    work.mkdir()
    notebook = Path(shutil.copy(NOTEBOOK, work))
    env = server_env(seeded_db.data_dir, database_url=seeded_db.url)
    name = f"notebook-{uuid.uuid4().hex[:8]}"
    with running_server(env, seeded_db.data_dir / f"server-{name}.log") as live:
        assert "errors" not in post_graphql(live.url, REGISTER, u=name, p=PASSWORD)
        done = subprocess.run(
            [str(jupyter), "execute", "--timeout=120", str(notebook)],
            env={
                **os.environ,
                "JUPYTER_PATH": str(tmp_path / "jupyter"),
                "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                "IPYTHONDIR": str(tmp_path / "ipython"),
                "BOOKQL_URL": live.url,
                "BOOKQL_USERNAME": name,
                "BOOKQL_PASSWORD": PASSWORD,
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [path.name for path in work.iterdir()] == ["training_data.ipynb"], "it writes nothing"
